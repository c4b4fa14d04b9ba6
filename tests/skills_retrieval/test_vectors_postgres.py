"""The skill index's vectors in PostgreSQL (retrieval/pgvectors.py) against the file store:
one contract, a real server, two processes appending at once, and a workspace whose ledger
is in PostgreSQL searching from its rows."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from ouroboros.capabilities.skills.embedding import E5Embedder, normalise
from ouroboros.capabilities.skills.retrieval import ModelMismatch, SkillIndex, tool_text
from ouroboros.capabilities.skills.retrieval.pgvectors import PostgresVectorStore
from ouroboros.capabilities.skills.retrieval.vectors import FileVectorStore
from ouroboros.kernel import Runtime
from ouroboros.storage.postgres.url import parse

DIM = 8


def vec(*hot: int) -> np.ndarray:
    out = np.zeros((len(hot), DIM), dtype=np.float32)
    for i, h in enumerate(hot):
        out[i, h] = 1.0
    return normalise(out)


@pytest.fixture
def pg_url(tmp_path: Path, new_pg_ledger: Callable[[], str]) -> str:
    url = new_pg_ledger()
    Runtime.init(tmp_path / "pg-ws", ledger=url).close()  # the ledger's schema
    return url


@pytest.fixture(params=["file", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens the same store again (a second reader: another process or host)."""
    opened: list[Any] = []
    if request.param == "file":
        def make() -> Any:
            return FileVectorStore(tmp_path / "index")
    else:
        url = parse(request.getfixturevalue("pg_url"))

        def make() -> Any:
            store = PostgresVectorStore(url)
            opened.append(store)
            return store
    yield make
    for store in opened:
        store.close()


def test_rows_supersede_search_refresh_compact_and_clear(opener: Callable[[], Any]) -> None:
    a, b = opener(), opener()
    a.append([("t0", "f0", "zero"), ("t1", "f1", "one")], vec(0, 1), "m")
    assert not b.get("t0")
    assert b.refresh() and b.get("t1").fingerprint == "f1" and len(b) == 2
    assert not b.refresh()  # nothing new: no reload
    a.append([("t0", "f0b", "zero again")], vec(2), "m")  # a newer version of t0
    assert b.refresh() and b.get("t0").fingerprint == "f0b" and len(b) == 2
    assert [e.tool_id for e in b.live()] == ["t1", "t0"]  # order follows the newest row
    assert b.nearest(vec(2)[0], 1)[0][0].tool_id == "t0"
    np.testing.assert_allclose(b.vector("t0"), vec(2)[0])
    before = [(e.tool_id, e.fingerprint) for e in b.live()]
    a.compact()  # renumbers: the other reader must load everything again
    assert b.refresh()
    assert [(e.tool_id, e.fingerprint) for e in b.live()] == before
    assert [e.row for e in b.live()] == [0, 1]
    b.append([("t2", "f2", "two")], vec(3), "m")
    assert a.refresh() and a.nearest(vec(3)[0], 1)[0][0].tool_id == "t2"
    a.clear()
    assert b.refresh() and len(b) == 0 and b.model_id is None
    b.append([("t9", "f9", "nine")], vec(4)[:, :4].copy(), "other-model")  # another model
    assert a.refresh() and a.model_id == "other-model" and a.dim == 4


def test_bad_appends_change_nothing(opener: Callable[[], Any]) -> None:
    a = opener()
    a.append([("t0", "f0", "zero")], vec(0), "m")
    with pytest.raises(ModelMismatch):
        a.append([("t1", "f1", "one")], vec(1), "another")
    with pytest.raises(ValueError):
        a.append([("t1", "f1", "one")], np.full((1, DIM), np.nan, dtype=np.float32), "m")
    with pytest.raises(ValueError):
        a.append([("t1", "f1", "one"), ("t2", "f2", "two")], vec(1), "m")
    with pytest.raises(ValueError):
        a.append([("", "f1", "one")], vec(1), "m")
    fresh = opener()
    assert [e.tool_id for e in fresh.live()] == ["t0"] and fresh.model_id == "m"


def _append_many(url: str, worker: int, n: int) -> None:
    store = PostgresVectorStore(parse(url))
    for i in range(n):
        store.append([(f"w{worker}_{i}", f"f{i}", "text")], vec(i % DIM), "m")
    store.close()


def test_two_processes_appending_at_once_get_every_row_numbered_once(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(pg_url, w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = PostgresVectorStore(parse(pg_url))
    try:
        assert len(store) == 80
        assert sorted(e.row for e in store.live()) == list(range(80))
    finally:
        store.close()


def test_a_postgresql_workspace_searches_from_rows_in_its_ledger_schema(
        tmp_path: Path, new_pg_ledger: Callable[[], str], embedder: E5Embedder) -> None:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)
    from ouroboros.capabilities.skills.discovery import open_index, sync_index
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.capabilities.skills.starter import starter_dirs
    from ouroboros.interfaces.cli.output import open_runtime

    url = new_pg_ledger()
    home = tmp_path / "ws"
    Runtime.init(home, ledger=url).close()
    with open_runtime(home) as rt:
        store = open_store(rt)
        for name in ("sum_ints", "unit_convert", "word_stats"):
            store.add_dir(next(d for d in starter_dirs() if d.name == name))
        index = open_index(store, embedder)
        sync_index(store, index)
        assert index.search("convert miles to kilometres", k=1)[0].tool_id == "unit_convert"
    assert not (home / "skills" / "index" / "vectors.f32").exists()
    schema = parse(url).ledger
    with psycopg.connect(parse(url).conninfo) as db:
        rows = db.execute(f'SELECT tool_id FROM "{schema}".skill_vectors').fetchall()
    assert {r[0] for r in rows} == {"sum_ints", "unit_convert", "word_stats"}
    # another host (here: a fresh index on the same workspace) reuses the rows
    with open_runtime(home) as rt:
        again = open_index(open_store(rt), embedder)
        assert len(again) == 3 and again.search("count the words", k=1)[0].tool_id == (
            "word_stats")


def test_a_sqlite_workspace_or_a_bare_store_keeps_its_vectors_in_files(
        tmp_path: Path, embedder: E5Embedder) -> None:
    from ouroboros.capabilities.skills.discovery import vector_store_for

    Runtime.init(tmp_path / "ws", ledger=None).close()
    assert vector_store_for(tmp_path / "ws" / "skills") is None
    assert vector_store_for(tmp_path / "not-a-workspace" / "skills") is None
    index = SkillIndex(tmp_path / "index", embedder)
    index.add_many([("csv_to_json", "sha256:" + "0" * 64,
                     tool_text("csv_to_json", "Convert CSV text into JSON objects."))])
    assert (tmp_path / "index" / "vectors.f32").exists()
