"""Write retrieval/minilm_reference.npz: MiniLM vectors of a few texts from the float32
graph, which every int8 build must reproduce (minilm.py checks it before use).

    python scripts/minilm_reference.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ouroboros.capabilities.skills.retrieval import minilm

TEXTS = [
    "how far is a marathon in miles",
    "unit_convert: convert a value between units of length, mass and temperature",
    "csv_to_json: read CSV text and return a JSON array of objects keyed by the header row",
    "send an email to my team about the release",
    "Wie spät ist es in Tokio? ¿Qué hora es? 東京は何時ですか",
    "d",
    "",
    "pdf_extract: return the text of every page of a PDF document, with page numbers; "
    "scanned pages without a text layer come back empty",
]


def main() -> None:
    out = Path(minilm.__file__).with_name(minilm.REFERENCE_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fp32.onnx"
        minilm.build_model(minilm.weights_dir(), path, quantise=False)
        model = minilm.MiniLMEmbedder.__new__(minilm.MiniLMEmbedder)
        import onnxruntime
        from tokenizers import Tokenizer
        model._ort = onnxruntime
        model._dim = 384
        model._tokenizer = Tokenizer.from_file(str(minilm.weights_dir() / "tokenizer.json"))
        model._tokenizer.no_padding()
        model._tokenizer.enable_truncation(minilm.MAX_TOKENS)
        model._session = model._session_for(path)
        vectors = np.stack([model.embed_query(t) for t in TEXTS])
    np.savez_compressed(out, texts=np.array(TEXTS), vectors=vectors.astype(np.float32))
    print(f"wrote {out}: {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
