"""The static embedding model, its tokenizer, documents, synthetic queries, the vector
store's defences and the query cache."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.skills.embedding import EmbeddingError
from ouroboros.capabilities.skills.retrieval import (
    FileVectorStore,
    RetrievalError,
    SkillIndex,
    ToolDocument,
    document_text,
)
from ouroboros.capabilities.skills.retrieval.documents import example_text, name_words
from ouroboros.capabilities.skills.retrieval.index import QueryCache
from ouroboros.capabilities.skills.retrieval.pieces import UNKNOWN, PieceTokenizer
from ouroboros.capabilities.skills.retrieval.static import StaticEmbedder, default_static_embedder
from ouroboros.capabilities.skills.retrieval.synthetic import (
    generate,
    parse_queries,
    read_synthetic,
    save_synthetic,
)


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return default_static_embedder()


def test_static_vectors_are_unit_length_and_deterministic(static: StaticEmbedder) -> None:
    a = static.embed_query("convert miles to kilometres")
    b = StaticEmbedder().embed_query("convert miles to kilometres")
    assert a.shape == (static.dim,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(a, b)
    docs = static.embed_documents(["one", "two words"])
    assert docs.shape == (2, static.dim)
    assert static.model_id.startswith("static-") and "@" in static.model_id


def test_static_model_ranks_a_paraphrase_above_another_topic(static: StaticEmbedder) -> None:
    # a static model is near-lexical: "rain" and "weather" stay apart (the e5 stage joins
    # them), but shared and related pieces do count
    q = static.embed_query("turn this csv file into json")
    csv = static.embed_query("convert csv text into json objects")
    weather = static.embed_query("daily weather forecast for a city")
    assert float(q @ csv) > float(q @ weather) + 0.2


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_any_text_embeds_without_error(text: str) -> None:
    v = default_static_embedder().embed_query(text)
    assert v.shape == (384,) and np.all(np.isfinite(v))
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4) or not np.any(v)


def test_huge_and_odd_inputs(static: StaticEmbedder) -> None:
    for text in ["x" * 100_000, "word " * 20_000, "\x00 NUL", "你好 🎉", "", "\u200b" * 50]:
        v = static.embed_query(text)
        assert v.shape == (384,) and np.all(np.isfinite(v))


def test_tokenizer_prefers_the_most_probable_split() -> None:
    tok = PieceTokenizer(["\u2581mar", "\u2581marathon", "athon", "a", "\u2581"],
                         [-5.0, -8.0, -6.0, -1.0, -2.0])
    assert tok.encode("marathon") == [1]  # -8 beats -5 + -6
    assert tok.encode("maraZZ") == [0, 3, UNKNOWN]


@given(st.text(alphabet="abc ", max_size=40))
def test_tokenizer_covers_every_character(text: str) -> None:
    tok = PieceTokenizer(["\u2581", "a", "b", "c", "\u2581ab"], [-1.0, -1.0, -1.0, -1.0, -1.5])
    ids = tok.encode(text)
    pieces = ["\u2581", "a", "b", "c", "\u2581ab"]
    assert "".join(pieces[i] for i in ids) == "".join("\u2581" + w for w in text.split())


def _npz(**arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def test_a_damaged_table_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(EmbeddingError):
        StaticEmbedder(bad)
    bad.write_bytes(_npz(pieces=np.array(["a", "b"]), scores=np.zeros(2, np.float32),
                         vectors=np.zeros((3, 4), np.int8), scale=np.ones(4, np.float32),
                         source=np.array("x")))
    with pytest.raises(EmbeddingError, match="inconsistent"):
        StaticEmbedder(bad)
    bad.write_bytes(_npz(pieces=np.array(["a"])))
    with pytest.raises(EmbeddingError):
        StaticEmbedder(bad)


def test_another_table_is_another_model(tmp_path: Path, static: StaticEmbedder) -> None:
    table = tmp_path / "t.npz"
    table.write_bytes(_npz(pieces=np.array(["\u2581a", "b"]), scores=np.array([-1.0, -2.0]),
                           vectors=np.ones((2, 4), np.int8), scale=np.ones(4, np.float32),
                           source=np.array("tiny")))
    tiny = StaticEmbedder(table)
    assert tiny.model_id != static.model_id and tiny.dim == 4


def test_documents_name_fields_and_skip_hidden_values() -> None:
    assert name_words("ChaDri.change_drink") == "Cha Dri change drink"
    assert name_words("csv_to_json") == "csv to json"
    doc = ToolDocument("unit_convert", "Convert units.\x00\u202e", ["value", "from_unit"],
                       ["value"], [example_text({"value": 1, "from": "km", "to": "mi"})],
                       ["how far is it in miles", ""])
    text = document_text(doc)
    lines = text.split("\n")
    assert lines[0] == "unit convert: Convert units."
    assert "input: value, from unit" in lines and "output: value" in lines
    assert "examples: value 1 from km to mi" in lines
    assert lines[-1] == "asked as: how far is it in miles"


def test_synthetic_answers_are_cleaned() -> None:
    answer = ("Sure! Here are some:\n1. how far is a marathon\n- convert 5 km to miles "
              "https://evil.example/x\n* \x1b[31mred\x1b[0m text\n2) how far is a MARATHON\n"
              + "\n".join(f"query {i} " + "z" * 500 for i in range(20)))
    got = parse_queries(answer)
    assert got[1] == "how far is a marathon" and "convert 5 km to miles" in got
    assert all("http" not in q and "\x1b" not in q and len(q) <= 160 for q in got)
    assert len(got) == 8
    assert sum(q.lower() == "how far is a marathon" for q in got) == 1


class _Reply:
    def __init__(self, content: str) -> None:
        self.content = content


class _Provider:
    model = "stub"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def chat(self, messages: list[dict[str, str]], tools: object = None) -> _Reply:
        self.prompts.append(messages[-1]["content"])
        return _Reply("how far is a marathon in miles\nconvert 10 km to mi")


class _Case:
    def __init__(self, value: object, hidden: bool) -> None:
        self.input, self.hidden = value, hidden


class _Version:
    tool_id, description = "unit_convert", "Convert units of length."

    def cases(self, include_hidden: bool = False) -> list[_Case]:
        cases = [_Case({"value": 1, "from": "km"}, False),
                 _Case({"value": 273.15, "from": "SECRET_HIDDEN"}, True)]
        return [c for c in cases if include_hidden or not c.hidden]


def test_synthetic_prompt_never_holds_hidden_cases(tmp_path: Path) -> None:
    provider = _Provider()
    queries = generate(provider, _Version())
    assert queries == ["how far is a marathon in miles", "convert 10 km to mi"]
    assert "SECRET_HIDDEN" not in provider.prompts[0] and "km" in provider.prompts[0]
    save_synthetic(tmp_path, "unit_convert", "sha256:1", "stub", queries)
    with open(tmp_path / "synthetic.jsonl", "a") as f:
        f.write("garbage\n" + json.dumps({"tool": "unit_convert", "fingerprint": 5}) + "\n")
    assert read_synthetic(tmp_path, "unit_convert", "sha256:1") == queries
    assert read_synthetic(tmp_path, "other", "sha256:1") == []


def test_a_huge_synthetic_file_is_read_a_line_at_a_time_and_a_torn_line_swallows_nothing(
        tmp_path: Path) -> None:
    """Indexing a version reads synthetic.jsonl: 300 MiB of long lines (written sparsely)
    were read whole, and a save after a line with no newline was appended onto it."""
    import os
    import tracemalloc

    mb = 1 << 20
    path = tmp_path / "synthetic.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(300):  # a hole of a MiB, then a newline
            os.lseek(fd, mb, os.SEEK_END)
            os.write(fd, b"\n")
        os.lseek(fd, 100 * mb, os.SEEK_END)
        os.write(fd, b"x")  # and a last line of 100 MiB with no newline
    finally:
        os.close(fd)
    save_synthetic(tmp_path, "unit_convert", "sha256:1", "stub", ["convert 10 km to mi"])
    tracemalloc.start()
    try:
        found = read_synthetic(tmp_path, "unit_convert", "sha256:1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == ["convert 10 km to mi"]
    assert peak < 16 * mb, f"{peak / mb:.1f} MiB"


def test_vector_store_refuses_bad_vectors_and_a_broken_manifest(tmp_path: Path) -> None:
    store = FileVectorStore(tmp_path)
    with pytest.raises(ValueError, match="finite"):
        store.append([("a", "sha256:1", "a")], np.full((1, 4), np.nan, np.float32), "m")
    with pytest.raises(ValueError, match="vectors"):
        store.append([("a", "sha256:1", "a")], np.zeros((2, 4), np.float32), "m")
    assert not (tmp_path / "vectors.f32").exists()
    store.append([("a", "sha256:1", "a")], np.ones((1, 4), np.float32) / 2, "m")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RetrievalError, match="delete"):
        FileVectorStore(tmp_path)


def test_entries_that_are_not_objects_end_the_log(tmp_path: Path) -> None:
    store = FileVectorStore(tmp_path)
    store.append([("a", "sha256:1", "a"), ("b", "sha256:2", "b")],
                 np.eye(2, 4, dtype=np.float32), "m")
    lines = (tmp_path / "entries.jsonl").read_text().splitlines()
    (tmp_path / "entries.jsonl").write_text(lines[0] + "\n[1, 2]\n" + lines[1] + "\n")
    reopened = FileVectorStore(tmp_path)
    assert [e.tool_id for e in reopened.live()] == ["a"]
    reopened.append([("c", "sha256:3", "c")], np.eye(1, 4, 2, dtype=np.float32), "m")
    assert [e.tool_id for e in FileVectorStore(tmp_path).live()] == ["a", "c"]


def test_query_cache_hits_and_stays_bounded() -> None:
    calls: list[str] = []

    def embed(q: str) -> np.ndarray:  # type: ignore[type-arg]
        calls.append(q)
        return np.ones(2, np.float32)

    cache = QueryCache(size=3)
    for q in ["a", "b", "a", "c", "d", "a"]:
        cache.get("m", q, embed)
    assert calls == ["a", "b", "c", "d"] and cache.hits == 2
    cache.get("other-model", "a", embed)
    assert calls[-1] == "a" and len(calls) == 5


def test_search_reuses_the_cached_query_vector(tmp_path: Path) -> None:
    index = SkillIndex(tmp_path)
    index.add("weather", "sha256:1", "weather: Daily weather forecast for a city.")
    index.search("rain in Oslo", k=1, mode="fast")
    index.search("rain in Oslo", k=1, mode="fast")
    assert index.cache.hits == 1 and index.cache.misses == 1


def test_the_index_runs_on_any_vector_store(tmp_path: Path) -> None:
    class Counting(FileVectorStore):
        """Stands for another backend (ANN, pgvector): only the interface is used."""

        appended = 0

        def append(self, items, vectors, model_id):  # type: ignore[no-untyped-def]
            Counting.appended += len(items)
            super().append(items, vectors, model_id)

    store = Counting(tmp_path / "elsewhere")
    index = SkillIndex(tmp_path / "index", store=store)
    index.add_many([("weather", "sha256:1", "weather: Daily weather forecast for a city."),
                    ("csv_to_json", "sha256:2", "csv to json: Convert CSV text into JSON.")])
    assert Counting.appended == 2 and (tmp_path / "elsewhere" / "vectors.f32").exists()
    assert index.search("convert a csv file", k=1, mode="fast")[0].tool_id == "csv_to_json"


def test_retrieval_never_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrieval opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    index = SkillIndex(tmp_path)
    index.add("weather", "sha256:1", "weather: Daily weather forecast for a city.")
    index.add("csv_to_json", "sha256:2", "csv to json: Convert CSV text with a header row.")
    assert index.search("will it rain in Oslo", k=1)[0].tool_id == "weather"  # e5 stage too


def test_concurrent_searches_while_tools_are_added(tmp_path: Path) -> None:
    import threading

    index = SkillIndex(tmp_path, reranker=False)
    index.add("weather", "sha256:0", "weather: Daily weather forecast for a city.")
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for _ in range(30):
                assert index.search("weather forecast for Oslo", k=3)[0].tool_id == "weather"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 30):
        index.add(f"tool_{i}", f"sha256:{i}", f"tool {i}: Convert file number {i} to text.")
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert len(SkillIndex(tmp_path, reranker=False)) == 30


def test_threads_adding_and_searching_lose_nothing_and_never_mix_states(
    tmp_path: Path, static: StaticEmbedder
) -> None:
    """Writers on one index object and on a second one (its own store), readers checking
    that every view they get is one state: as many vectors as entries, each its own."""
    import threading

    first, second = SkillIndex(tmp_path, static, reranker=False), \
        SkillIndex(tmp_path, static, reranker=False)
    first.add("weather", "sha256:0", "weather: Daily weather forecast for a city.")
    errors: list[BaseException] = []
    done = threading.Event()

    def write(index: SkillIndex, who: str) -> None:
        try:
            for i in range(8):
                index.add(f"{who}_{i}", f"sha256:{who}{i}", f"{who} {i}: Convert file {i} to text.")
        except BaseException as e:
            errors.append(e)

    def read(index: SkillIndex) -> None:
        try:
            while not done.is_set():
                assert index.search("weather forecast for Oslo", k=2)[0].tool_id == "weather"
                _, entries, matrix = index._store.view()
                assert len(entries) == matrix.shape[0]
                row = next(i for i, e in enumerate(entries) if e.tool_id == "weather")
                np.testing.assert_allclose(matrix[row], static.embed_documents(
                    ["weather: Daily weather forecast for a city."])[0], atol=1e-6)
        except BaseException as e:
            errors.append(e)

    writers = [threading.Thread(target=write, args=(ix, w))
               for ix, w in ((first, "a"), (first, "b"), (second, "c"), (second, "d"))]
    readers = [threading.Thread(target=read, args=(ix,)) for ix in (first, second)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    for t in readers:
        t.join(120)
    assert not errors, errors[0]
    reopened = FileVectorStore(tmp_path)
    first.search("convert a file", k=1)  # a search picks up what the other object wrote
    assert len(reopened) == 33 and len(first) == 33
    assert _rows_on_disk(tmp_path, reopened.dim) == 33


def _rows_on_disk(root: Path, dim: int) -> int:
    """Rows in the files, checked dense (0, 1, 2 …) and as many vectors as entries."""
    rows = [json.loads(line)["row"] for line in (root / "entries.jsonl").read_text().splitlines()]
    assert rows == list(range(len(rows)))
    assert (root / "vectors.f32").stat().st_size == len(rows) * dim * 4
    return len(rows)


_CHILD = """
import sys
from pathlib import Path

import numpy as np

from ouroboros.capabilities.skills.retrieval import SkillIndex

root, who = Path(sys.argv[1]), sys.argv[2]
index = SkillIndex(root, reranker=False)


def check() -> None:  # what this process sees is one state of the files, row for row
    index.search("convert a file to text", k=3)
    store = index._store
    entries, matrix = store.live(), store.matrix()
    assert len(entries) == len(matrix), (len(entries), len(matrix))
    if entries:
        texts = [e.text for e in entries]
        np.testing.assert_allclose(matrix, index.embedder.embed_documents(texts), atol=1e-6)


if who == "reader":
    index.add("seed", "sha256:seed", "seed: Convert a seed file to text.")
    while not (root / "stop").exists():
        check()
else:
    for version in range(12):
        for i in range(5):
            index.add(f"{who}_{i}", f"sha256:{who}{i}v{version}",
                      f"{who} {i}: Convert file {i} to text, version {version}.")
        check()
"""


def test_processes_adding_versions_at_once_keep_every_tool_aligned(
    tmp_path: Path, static: StaticEmbedder
) -> None:
    """Three processes append 60 versions each while a fourth only searches (the store
    compacts several times meanwhile): every tool's newest version survives, rows stay
    dense, and every process only ever sees whole states (each vector its own text's)."""
    import subprocess
    import sys

    def child(who: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), who],
                                stderr=subprocess.PIPE, text=True)

    reader = child("reader")
    writers = [child(who) for who in ("a", "b", "c")]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    (tmp_path / "stop").touch()
    _, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    store = FileVectorStore(tmp_path)
    live = store.live()
    assert sorted(e.tool_id for e in live) == sorted(
        ["seed", *(f"{w}_{i}" for w in "abc" for i in range(5))])
    assert all(e.fingerprint.endswith("v11") for e in live if e.tool_id != "seed")
    assert 16 <= _rows_on_disk(tmp_path, store.dim) < 3 * 60  # compaction ran
    np.testing.assert_allclose(store.matrix(), static.embed_documents([e.text for e in live]),
                               atol=1e-6)
