"""The semantic stage: MiniLM built from pinned weights, checked before use, and in the ranking.

Attacks on the model file: a truncated cache, a valid ONNX file that computes something
else, altered weights or tokenizer, two processes building at once, hostile inputs (huge,
NUL, lone surrogates). Then what the stage changes in a search, and that it stays out of the
modes that promise no transformer.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ouroboros.capabilities.skills.embedding import EmbeddingError
from ouroboros.capabilities.skills.retrieval import SkillIndex
from ouroboros.capabilities.skills.retrieval import minilm as M
from ouroboros.capabilities.skills.retrieval.semantic import SemanticStage
from ouroboros.capabilities.skills.retrieval.vectors import FileVectorStore

TOOLS = [
    ("weather_now", "Current temperature, rain and wind forecast for a city."),
    ("pdf_text", "Extract the text layer of every page of a PDF file."),
    ("tz_convert", "Convert a clock time from one time zone to another."),
    ("email_send", "Send an email message to a list of recipients."),
    ("image_resize", "Scale a picture to a new width and height."),
    ("stock_quote", "Latest share price of a listed company by ticker symbol."),
    ("recipe_find", "Search cooking recipes by ingredient."),
    ("password_gen", "Generate a random strong password."),
    ("translate", "Translate text between languages."),
    ("flight_search", "Find airline tickets between two airports on a date."),
]
# requests that share no content word with their tool's description
PARAPHRASES = [
    ("do I need an umbrella tomorrow in Paris", "weather_now"),
    ("what is Apple trading at", "stock_quote"),
    ("book me a plane to Rome", "flight_search"),
    ("what hour is it in Sydney when it is noon in London", "tz_convert"),
    ("is it going to be cold this weekend", "weather_now"),
    ("make this photo smaller", "image_resize"),
]


@pytest.fixture(scope="module")
def model() -> M.MiniLMEmbedder:
    return M.default_minilm()


def _index(root: Path, semantic: bool | SemanticStage = True) -> SkillIndex:
    index = SkillIndex(root, reranker=False, semantic=semantic)
    index.add_many([(t, f"sha256:{i:064x}", text) for i, (t, text) in enumerate(TOOLS)])
    return index


# -- the model ---------------------------------------------------------------------------
def test_the_model_reproduces_its_float32_reference(model: M.MiniLMEmbedder) -> None:
    assert model.reference_check() >= M.MIN_REFERENCE_COSINE
    assert model.model_id.startswith(f"{M.MODEL_NAME}@{M.WEIGHTS_SHA256[:12]}")
    v = model.embed_query("how far is a marathon in miles")
    assert v.shape == (384,) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_a_text_has_one_vector_whatever_it_is_embedded_with(model: M.MiniLMEmbedder) -> None:
    """Activations are quantised per call: a tool's vector must not depend on the tools
    added beside it."""
    texts = ["d", "convert 5 kg to pounds", "a much longer description " * 20, ""]
    together = model.embed_documents(texts)
    alone = np.stack([model.embed_documents([t])[0] for t in texts])
    assert np.array_equal(together, alone)
    assert np.array_equal(model.embed_documents(texts[::-1])[::-1], together)


def test_meaning_not_words(model: M.MiniLMEmbedder) -> None:
    q = model.embed_query("do I need an umbrella tomorrow")
    weather = model.embed_query("rain forecast for a city")
    pdf = model.embed_query("extract the text of a PDF file")
    assert float(q @ weather) > float(q @ pdf) + 0.2


def test_hostile_inputs_are_bounded_and_never_crash(model: M.MiniLMEmbedder) -> None:
    huge = "lorem ipsum " * 500_000  # 6 MB
    v = model.embed_query(huge)
    assert float(v @ model.embed_query(huge[:M.MAX_CHARS])) > 0.9999
    for text in ("\x00\x00 nul", "\ud800 lone surrogate", "\u202e\u200b", "😀" * 1000):
        out = model.embed_query(text)
        assert np.isfinite(out).all() and abs(float(np.linalg.norm(out)) - 1.0) < 1e-5


# -- the cached model file ---------------------------------------------------------------
def test_a_truncated_cache_file_is_rebuilt(model: M.MiniLMEmbedder, tmp_path: Path) -> None:
    good = M.model_file(tmp_path)
    good.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path, good)
    with good.open("r+b") as f:
        f.truncate(1000)
    again = M.MiniLMEmbedder(cache=tmp_path)
    assert good.stat().st_size == model.path.stat().st_size
    assert again.reference_check() >= M.MIN_REFERENCE_COSINE


def test_a_valid_model_that_computes_something_else_is_rebuilt(tmp_path: Path) -> None:
    """An attacker (or a stale build) swaps in a well-formed ONNX file of the right shape:
    it loads, but fails the reference vectors, so it is replaced."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    const = np.full((1, 384), 1.0 / np.sqrt(384), dtype=np.float32)
    graph = h.make_graph(
        [h.make_node("Shape", ["input_ids"], ["s"]),
         h.make_node("Slice", ["s", "zero", "one"], ["b"]),
         h.make_node("Concat", ["b", "dim"], ["shape"], axis=0),
         h.make_node("Expand", ["v", "shape"], ["embedding"])],
        "fake",
        [h.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         h.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [h.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 384])],
        [onnx.numpy_helper.from_array(const, "v"),
         onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
         onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
         onnx.numpy_helper.from_array(np.array([384], np.int64), "dim")])
    fake = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    fake.ir_version = 8
    path = M.model_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fake, str(path))
    planted = path.read_bytes()
    rebuilt = M.MiniLMEmbedder(cache=tmp_path)
    assert path.read_bytes() != planted
    assert rebuilt.reference_check() >= M.MIN_REFERENCE_COSINE


def _copy_weights(to: Path) -> Path:
    src = M.weights_dir()
    shutil.copytree(src, to)
    return to


def test_altered_weights_are_refused(tmp_path: Path) -> None:
    weights = _copy_weights(tmp_path / "weights")
    with (weights / "model.safetensors").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")  # one float of the last tensor becomes +inf
    with pytest.raises(EmbeddingError, match="is not upstream's file"):
        M.MiniLMEmbedder(source=weights, cache=tmp_path / "cache")
    assert not M.model_file(tmp_path / "cache").exists()  # nothing half-written


def test_an_altered_tokenizer_is_refused(tmp_path: Path) -> None:
    weights = _copy_weights(tmp_path / "weights")
    tok = weights / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"marathon"', '"marathom"', 1))
    with pytest.raises(EmbeddingError, match=r"tokenizer\.json is not upstream's file"):
        M.MiniLMEmbedder(source=weights, cache=tmp_path / "cache")


def test_an_altered_config_is_refused(tmp_path: Path) -> None:
    """config.json was read unchecked: layer_norm_eps 1e-12 -> 1e-3 built a different graph
    that still passed the reference check (cosine 0.980) and was cached as the model."""
    weights = _copy_weights(tmp_path / "weights")
    config = weights / "config.json"
    text = config.read_text()
    for altered, named in ((text.replace('"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e-3'),
                            "layer_norm_eps"),
                           (text.replace('"num_hidden_layers": 6', '"num_hidden_layers": 5'),
                            "num_hidden_layers"),
                           (text.replace('"hidden_size": 384', '"hidden_size": 384.0'),
                            "hidden_size"),
                           ("[]", "not a JSON object"), ("{", "line 1 column 2")):
        config.write_text(altered)
        with pytest.raises(EmbeddingError, match=r"config\.json is not upstream's config") as e:
            M.MiniLMEmbedder(source=weights, cache=tmp_path / "cache")
        assert named in str(e.value)
        assert not M.model_file(tmp_path / "cache").exists()  # nothing half-written


def test_upstreams_config_saved_another_way_is_the_same_model(tmp_path: Path) -> None:
    """The config is checked by the values the graph is built from, so upstream's file
    re-saved with other whitespace and key order (a copy under OURO_MINILM_DIR) builds and
    passes the reference check."""
    weights = _copy_weights(tmp_path / "weights")
    config = weights / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps(dict(sorted(data.items(), reverse=True)), indent=4))
    model = M.MiniLMEmbedder(source=weights, cache=tmp_path / "cache")
    assert model.reference_check() >= M.MIN_REFERENCE_COSINE


def test_a_file_swapped_after_its_check_is_not_the_one_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each upstream file was hashed, then opened again to be used: one swapped in between
    was used unchecked (here the tokenizer with "umbrella", a word of no reference text,
    mapped elsewhere: it passed the reference check and changed that word's vectors)."""
    weights = _copy_weights(tmp_path / "weights")
    tok = weights / "tokenizer.json"
    check = M._checked

    def check_then_swap(path: Path, want: str) -> object:
        out = check(path, want)
        if path.name == "tokenizer.json":
            tok.write_text(tok.read_text().replace('"umbrella"', '"umbrelIa"', 1))
        return out

    monkeypatch.setattr(M, "_checked", check_then_swap)
    swapped = M.MiniLMEmbedder(source=weights, cache=tmp_path / "cache")
    assert np.array_equal(swapped.embed_query("do I need an umbrella"),
                          M.default_minilm().embed_query("do I need an umbrella"))


def test_missing_weights_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OURO_MINILM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(EmbeddingError, match=r"tokenizer\.json is missing"):
        M.MiniLMEmbedder(cache=tmp_path / "cache")


def _build_in_child(cache: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    m = M.MiniLMEmbedder(cache=Path(cache))
    out.put((m.model_id, round(m.reference_check(), 6)))


def test_two_processes_starting_cold_build_one_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path), results))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    got = [results.get(timeout=5) for _ in procs]
    assert got[0] == got[1] and got[0][1] >= M.MIN_REFERENCE_COSINE
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".onnx"] == \
        [M.model_file(tmp_path).name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


# -- in the pipeline ---------------------------------------------------------------------
def test_paraphrases_find_their_tool_only_with_the_semantic_stage(tmp_path: Path) -> None:
    without = _index(tmp_path / "without", semantic=False)
    with_ = _index(tmp_path / "with")
    missed = [q for q, tool in PARAPHRASES if without.search(q, 3)[0].tool_id != tool]
    assert len(missed) >= 3  # the case for the stage: static + BM25 alone get these wrong
    for q, tool in PARAPHRASES:
        hits = with_.search(q, 3)
        assert hits[0].tool_id == tool, (q, [h.tool_id for h in hits])
        assert hits[0].semantic_rank is not None
        assert hits[0].to_json()["semantic_rank"] == hits[0].semantic_rank


def test_results_name_the_semantic_model_only_where_it_ranked(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert index.semantic_model("full") == index.semantic_model("deep") == \
        M.default_minilm().model_id
    assert [index.semantic_model(m) for m in ("fast", "fused", "dense", "bm25")] == [None] * 4
    assert _index(tmp_path / "off", semantic=False).semantic_model() is None


def test_tool_vectors_follow_the_newest_version(tmp_path: Path) -> None:
    index = _index(tmp_path)
    store = FileVectorStore(tmp_path / "minilm")
    assert len(store) == len(TOOLS) and store.model_id == M.default_minilm().model_id
    assert index.search("do I need an umbrella tomorrow", 1)[0].tool_id == "weather_now"
    # the weather tool becomes a PDF tool: its stored vector follows the new text
    new = "Merge several PDF files into one."
    index.add("weather_now", "sha256:" + "f" * 64, new)
    row = FileVectorStore(tmp_path / "minilm").get("weather_now")
    assert row is not None and row.fingerprint.endswith("f" * 64) and row.text == new
    assert np.array_equal(FileVectorStore(tmp_path / "minilm").vector("weather_now"),
                          M.default_minilm().embed_documents([new])[0])
    hits = index.search("combine two PDF documents into a single file", 3)
    assert hits[0].tool_id == "weather_now" and hits[0].semantic_rank == 1


def test_an_index_built_without_the_stage_gains_it_on_first_search(tmp_path: Path) -> None:
    _index(tmp_path, semantic=False)
    assert not (tmp_path / "minilm").exists()
    reopened = SkillIndex(tmp_path, reranker=False, semantic=True)
    hits = reopened.search("what is Apple trading at", 3)
    assert hits[0].tool_id == "stock_quote" and hits[0].semantic_rank == 1
    assert len(FileVectorStore(tmp_path / "minilm")) == len(TOOLS)


def test_vectors_of_another_model_are_dropped_not_mixed(tmp_path: Path) -> None:
    stale = FileVectorStore(tmp_path / "minilm")
    stale.append([("weather_now", "sha256:" + "0" * 64, "x")],
                 np.ones((1, 384), np.float32) / np.sqrt(384), "some-other-model")
    index = _index(tmp_path)
    assert FileVectorStore(tmp_path / "minilm").model_id == M.default_minilm().model_id
    assert index.search("book me a plane to Rome", 1)[0].tool_id == "flight_search"


class _Counting:
    def __init__(self) -> None:
        self.inner = M.default_minilm()
        self.queries = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:  # type: ignore[type-arg]
        self.queries += 1
        return self.inner.embed_query(text)


def test_fast_and_baseline_modes_never_run_minilm(tmp_path: Path) -> None:
    from ouroboros.capabilities.skills.retrieval.hubs import PROBES

    counting = _Counting()
    index = _index(tmp_path, semantic=SemanticStage(tmp_path / "minilm", counting))
    for mode in ("fast", "fused", "dense", "bm25"):
        hits = index.search("book me a plane to Rome", 3, mode=mode)  # type: ignore[arg-type]
        assert all(h.semantic_rank is None for h in hits)
    assert counting.queries == 0
    index.search("book me a plane to Rome", 3)
    index.search("book me a plane to Rome", 3)  # the query vector is cached
    assert counting.queries == len(PROBES) + 1  # the hub probes once, then the query


def test_a_stage_that_cannot_load_is_switched_off_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(M.default_minilm, "_value", None)
    monkeypatch.setenv("OURO_MINILM_DIR", str(tmp_path / "nowhere"))
    with caplog.at_level(logging.WARNING):
        index = _index(tmp_path / "index")
        hits = index.search("convert a clock time to another zone", 3)
    assert hits[0].tool_id == "tz_convert" and hits[0].semantic_rank is None
    assert index.semantic is not None and "tokenizer.json is missing" in (index.semantic.error or "")
    assert sum("semantic stage off" in r.message for r in caplog.records) == 1


# -- the tools' vectors on disk (`<index>/minilm/`, only a cache) ---------------------------
def _hits(index: SkillIndex, query: str = "book me a plane to Rome") -> list[tuple[str, float]]:
    return [(h.tool_id, h.score) for h in index.search(query, 3)]


def _healed(root: Path) -> None:
    store = FileVectorStore(root / "minilm")
    assert store.model_id == M.default_minilm().model_id and store.dim == 384
    assert len(store) == len(TOOLS)
    vectors = np.stack([store.vector(t) for t, _ in TOOLS])
    assert np.array_equal(vectors, M.default_minilm().embed_documents([t for _, t in TOOLS]))


@pytest.mark.parametrize(("garbage", "warned"), [("{not json", 1),
                                                ('{"model_id": "%s", "dim": 768}', 0)])
def test_an_unreadable_vector_manifest_is_rebuilt_not_fatal(
        tmp_path: Path, garbage: str, warned: int, caplog: pytest.LogCaptureFixture) -> None:
    """A torn or altered `minilm/manifest.json` (or one naming another dimension) made every
    search raise; the stage's vectors are only a cache, so they are made again."""
    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index")
    (tmp_path / "index" / "minilm" / "manifest.json").write_text(
        garbage.replace("%s", M.default_minilm().model_id))
    with caplog.at_level(logging.WARNING):
        reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
        assert _hits(reopened) == clean
    assert reopened.semantic is not None and reopened.semantic.error is None
    assert sum("dropping" in r.message and "minilm" in r.message for r in caplog.records) == \
        warned  # a torn manifest is worth a word; a wrong dimension is another model's cache
    _healed(tmp_path / "index")


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30, 0.0])
def test_garbage_rows_in_the_vector_cache_are_made_again(tmp_path: Path, value: float) -> None:
    """NaN, infinite, huge or zero rows in `minilm/vectors.f32` ranked tools by garbage, with
    no word said; a row that is not a unit vector is treated as missing."""
    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index")
    path = tmp_path / "index" / "minilm" / "vectors.f32"
    raw = np.fromfile(path, "<f4").reshape(len(TOOLS), 384)
    raw[[0, 2, 9]] = value
    raw.tofile(path)
    reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
    assert _hits(reopened) == clean
    _healed(tmp_path / "index")


def test_a_vector_cache_that_cannot_be_read_switches_the_stage_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A directory planted where `minilm/vectors.f32` goes made every search and `tool add`
    raise IsADirectoryError; now the stage goes off with one warning and nothing is lost."""
    _index(tmp_path)
    path = tmp_path / "minilm" / "vectors.f32"
    path.unlink()
    path.mkdir()
    with caplog.at_level(logging.WARNING):
        reopened = SkillIndex(tmp_path, reranker=False, semantic=True)
        hits = reopened.search("convert a clock time to another zone", 3)
        reopened.add("extra", "sha256:" + "e" * 64, "Count the words of a text.")
        reopened.search("how many words are in this", 3)
    assert hits[0].tool_id == "tz_convert" and hits[0].semantic_rank is None
    assert reopened.semantic is not None and "vectors.f32" in (reopened.semantic.error or "")
    assert sum("semantic stage off" in r.message for r in caplog.records) == 1
    assert len(SkillIndex(tmp_path, reranker=False, semantic=False)) == len(TOOLS) + 1



def test_a_stage_off_for_its_files_comes_back_once_they_are_mended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A stage switched off by its files (here a directory planted at `vectors.f32`; in
    life a full disk) stayed off until the process restarted, so a long-running `ouro
    serve` lost it for good. It is tried again `RETRY_SECONDS` after the failure: still
    off before that, still off (one more warning) while the cause stands, back on when
    it is mended, with the cache made again from the tools."""
    from ouroboros.capabilities.skills.retrieval import linevectors

    clock = [1000.0]
    monkeypatch.setattr(linevectors, "_now", lambda: clock[0])
    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index")
    path = tmp_path / "index" / "minilm" / "vectors.f32"
    path.unlink()
    path.mkdir()
    reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
    query = "convert a clock time to another zone"
    with caplog.at_level(logging.WARNING):
        assert reopened.search(query, 3)[0].semantic_rank is None  # off
        clock[0] += linevectors.RETRY_SECONDS + 1
        assert reopened.search(query, 3)[0].semantic_rank is None  # tried: still planted
        assert sum("semantic stage off" in r.message for r in caplog.records) == 2
        path.rmdir()  # mended
        clock[0] += linevectors.RETRY_SECONDS / 2
        assert reopened.search(query, 3)[0].semantic_rank is None  # not yet tried again
        clock[0] += linevectors.RETRY_SECONDS / 2 + 1
        assert reopened.search(query, 3)[0].semantic_rank is not None  # back
    assert reopened.semantic is not None and reopened.semantic.error is None
    assert sum("semantic stage off" in r.message for r in caplog.records) == 2
    assert _hits(reopened) == clean
    _healed(tmp_path / "index")


def test_a_model_that_cannot_load_is_not_tried_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that cannot load stays off after the wait: trying it again would cost a
    rebuild (~10 s) on every try, and nothing in the process will mend it."""
    from ouroboros.capabilities.skills.retrieval import linevectors

    clock = [1000.0]
    monkeypatch.setattr(linevectors, "_now", lambda: clock[0])
    monkeypatch.setattr(M.default_minilm, "_value", None)
    monkeypatch.setenv("OURO_MINILM_DIR", str(tmp_path / "nowhere"))
    index = _index(tmp_path / "index")
    calls: list[int] = []
    real = SemanticStage.embedder.fget  # type: ignore[attr-defined]

    def counted(self: SemanticStage) -> object:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(SemanticStage, "embedder", property(counted))
    for _ in range(3):
        clock[0] += 10 * linevectors.RETRY_SECONDS
        assert index.search("convert a clock time to another zone", 3)[0].semantic_rank is None
    assert calls == [] and "tokenizer.json is missing" in (index.semantic.error or "")


# -- a cache directory the process cannot write ------------------------------------------
def test_a_cache_whose_lock_cannot_be_taken_still_serves_its_model(
        model: M.MiniLMEmbedder, tmp_path: Path) -> None:
    """A prebuilt model in a cache this process cannot write (a read-only mount, another
    user's directory; here the lock's name is taken by a directory, which fails the same
    `open`) raised PermissionError on every start, before the good file was even read."""
    good = M.model_file(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    shutil.copyfile(model.path, good)
    (tmp_path / ".lock").mkdir()
    served = M.MiniLMEmbedder(cache=tmp_path)
    assert served.reference_check() >= M.MIN_REFERENCE_COSINE
    assert good.read_bytes() == model.path.read_bytes()


@pytest.mark.parametrize("plant", ["file_at_cache", "dir_at_model"])
def test_a_cache_that_cannot_be_built_in_switches_the_stage_off_and_names_the_fix(
        tmp_path: Path, plant: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """OURO_MODEL_CACHE naming a file, or a directory planted at the model's file name,
    raised FileExistsError / IsADirectoryError out of every search instead of turning the
    stage off with one warning."""
    cache = tmp_path / "cache"
    if plant == "file_at_cache":
        cache.write_text("not a directory")
    else:
        M.model_file(cache).mkdir(parents=True)
    with pytest.raises(EmbeddingError, match="OURO_MODEL_CACHE"):
        M.MiniLMEmbedder(cache=cache)
    monkeypatch.setattr(M.default_minilm, "_value", None)
    monkeypatch.setenv("OURO_MODEL_CACHE", str(cache))
    with caplog.at_level(logging.WARNING):
        index = _index(tmp_path / "index")
        hits = index.search("convert a clock time to another zone", 3)
    assert hits[0].tool_id == "tz_convert" and hits[0].semantic_rank is None
    assert sum("semantic stage off" in r.message and "OURO_MODEL_CACHE" in r.message
               for r in caplog.records) == 1
    assert not [p for p in tmp_path.rglob(".build-*")]


def _build_forever(cache: str) -> None:
    M.MiniLMEmbedder(cache=Path(cache))


def test_a_build_killed_midway_leaves_nothing_behind(tmp_path: Path) -> None:
    """kill -9 during the build left its `.build-*` directory (87 MB: the float32 graph and
    part of the int8 one) in the cache for good; the next start under the lock sweeps it."""
    import signal
    import time

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_build_forever, args=(str(tmp_path),))
    child.start()
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".build-") and any(p.iterdir())
                  for p in tmp_path.glob(".build-*")):
        assert time.monotonic() < deadline and child.is_alive()
        time.sleep(0.05)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert [p.name for p in tmp_path.glob(".build-*")]  # what the killed build left
    model = M.MiniLMEmbedder(cache=tmp_path)
    assert model.reference_check() >= M.MIN_REFERENCE_COSINE
    assert not list(tmp_path.glob(".build-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", M.model_file(tmp_path).name]


@pytest.mark.parametrize("plant", ["symlink:entries.jsonl", "symlink:vectors.f32",
                                   "hardlink:entries.jsonl", "symlink:manifest.json.tmp",
                                   "fifo:entries.jsonl"])
def test_a_link_planted_in_the_vector_cache_is_never_written_through(
        tmp_path: Path, plant: str) -> None:
    """`<index>/minilm/entries.jsonl` as a link to one of the user's files: the next search
    truncated that file to nothing and appended JSON lines carrying tool descriptions to it
    (a link at `manifest.json.tmp` had the manifest written through it). Now a name that is
    not a plain file of the store is dropped (the name, never its target) and made again.
    (A FIFO there hung the search in `read_bytes`.)"""
    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index", semantic=False)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the user's own file\n" * 50)
    kind, name = plant.split(":")
    cache = tmp_path / "index" / "minilm"
    cache.mkdir()
    if kind == "symlink":
        (cache / name).symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(cache / name)
    else:
        (cache / name).hardlink_to(victim)
    reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
    assert _hits(reopened) == clean
    assert victim.read_bytes() == b"the user's own file\n" * 50
    _healed(tmp_path / "index")


@pytest.mark.parametrize(("name", "most"), [("vectors.f32", 64 << 20),
                                           ("entries.jsonl", 160 << 20)])
def test_a_huge_cache_file_is_not_read_past_its_rows(tmp_path: Path, name: str,
                                                     most: int) -> None:
    """A `minilm/` file grown to gigabytes (here 1 GB, sparse) was read whole on every
    open: a 6 GB `vectors.f32` raised MemoryError out of the search, and `entries.jsonl`
    (one unbroken line) took twice its size. Only the rows the entries name are read, and
    entry lines one at a time, each at most `MAX_ENTRY_LINE` long, no further than the
    rows the vectors file holds."""
    import tracemalloc

    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index")
    os.truncate(tmp_path / "index" / "minilm" / name, 1 << 30)
    tracemalloc.start()
    try:
        reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
        assert _hits(reopened) == clean
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < most, peak
    _healed(tmp_path / "index")


def test_an_e5_cache_that_cannot_be_read_switches_the_reranker_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The e5 re-ranker keeps its vectors in the same kind of cache (LineVectors): a
    directory planted at `rerank/vectors.f32` made every unsure or deep search raise
    IsADirectoryError. Now e5 goes off with one warning; the first stage and MiniLM answer."""
    index = SkillIndex(tmp_path, semantic=True)
    index.add_many([(t, f"sha256:{i:064x}", text) for i, (t, text) in enumerate(TOOLS)])
    index.search("book me a plane to Rome", 3, mode="deep")
    path = tmp_path / "rerank" / "vectors.f32"
    path.unlink()
    path.mkdir()
    with caplog.at_level(logging.WARNING):
        reopened = SkillIndex(tmp_path, semantic=True)
        for _ in range(2):
            hits = reopened.search("book me a plane to Rome", 3, mode="deep")
            assert hits[0].tool_id == "flight_search" and hits[0].semantic_rank == 1
    assert reopened.reranker is not None and "vectors.f32" in (reopened.reranker.error or "")
    assert sum("e5 re-ranker off" in r.message for r in caplog.records) == 1



def test_an_e5_cache_off_for_its_files_comes_back_once_mended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ouroboros.capabilities.skills.retrieval import linevectors

    clock = [1000.0]
    monkeypatch.setattr(linevectors, "_now", lambda: clock[0])
    index = SkillIndex(tmp_path, semantic=True)
    index.add_many([(t, f"sha256:{i:064x}", text) for i, (t, text) in enumerate(TOOLS)])
    index.search("book me a plane to Rome", 3, mode="deep")  # e5's vectors are made here
    path = tmp_path / "rerank" / "vectors.f32"
    path.unlink()
    path.mkdir()
    reopened = SkillIndex(tmp_path, semantic=True)
    reopened.search("book me a plane to Rome", 3, mode="deep")
    assert reopened.reranked == 0 and reopened.reranker is not None and reopened.reranker.error
    path.rmdir()
    clock[0] += linevectors.RETRY_SECONDS + 1
    hits = reopened.search("book me a plane to Rome", 3, mode="deep")
    assert reopened.reranked == 1 and reopened.reranker.error is None
    assert hits[0].tool_id == "flight_search"


@pytest.mark.parametrize(("field", "value"), [("row", 0.0), ("tool_id", ["weather_now"]),
                                              ("text", {"a": 1})])
def test_a_mistyped_entry_in_the_vector_cache_is_a_torn_tail_not_a_crash(
        tmp_path: Path, field: str, value: object) -> None:
    """Valid JSON of the wrong type in `minilm/entries.jsonl` (`"row": 0.0`, a list for a
    tool id) passed the torn-line check and raised IndexError / TypeError out of every
    search. It now ends the readable rows like a torn line, and they are made again."""
    import json

    clean = _hits(_index(tmp_path / "clean"))
    _index(tmp_path / "index")
    path = tmp_path / "index" / "minilm" / "entries.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0][field] = value
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    reopened = SkillIndex(tmp_path / "index", reranker=False, semantic=True)
    assert _hits(reopened) == clean
    _healed(tmp_path / "index")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs to give a file to another user")
def test_a_model_file_planted_by_another_user_is_not_trusted(
        model: M.MiniLMEmbedder, tmp_path: Path) -> None:
    """A cache in a shared directory (OURO_MODEL_CACHE=/tmp/models): another local user
    can plant the model file first, and one made to agree on the eight reference texts
    was loaded as MiniLM. A cached file owned by anyone but this user or root is rebuilt;
    in a sticky directory it cannot be replaced, and the stage goes off saying so."""
    planted = M.model_file(tmp_path)
    shutil.copyfile(model.path, planted)  # stands for a crafted file that passes the check
    os.chown(planted, 65534, 65534)
    ours = M.MiniLMEmbedder(cache=tmp_path)
    assert planted.stat().st_uid == os.getuid()  # this user's own build replaced it
    assert planted.read_bytes() == model.path.read_bytes()
    assert ours.reference_check() >= M.MIN_REFERENCE_COSINE
