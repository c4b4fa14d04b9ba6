"""FLUX: assembler, disassembler, verifier, and the reference VM against the fast paths
(capabilities/flux/).

The first byte picks the input: assembly text (``assemble``) or an image file
(``Image.from_bytes``); its high bits pick the VM inputs. Invariant: the assembler raises
only ``AssemblyError``, image decoding only ``DecodeError``; ``disassemble`` of any image
assembles back to the same image; ``verify`` never raises; the reference VM never
raises on any image (a bad program traps); on a verified image the pre-decoded loop, the
compiled path and the wasm engine (``ouro flux run``) give exactly the reference VM's
result: outputs, channels, halting, trap, cycles and steps.
"""

from __future__ import annotations

from _harness import ROOT, fuzz, instrumented

with instrumented(__name__):
    from ouroboros.capabilities.flux.asm import AssemblyError, assemble, disassemble
    from ouroboros.capabilities.flux.compiled import run_compiled
    from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
    from ouroboros.capabilities.flux.isa import DecodeError, Image
    from ouroboros.capabilities.flux.verifier import verify
    from ouroboros.capabilities.flux.vm import run
    from ouroboros.capabilities.flux.wasm import WasmRunner

INPUTS: tuple[list[int], ...] = ([], [0, 0, 0, 0], [7, -3, 2, 100], [-(1 << 63), -1, 1 << 62, 5],
          [(1 << 63) - 1, 0, -7, 3])
FUEL = 2000
#: One runner per process: it compiles each distinct image once (wasmtime, an LRU cache).
_WASM: WasmRunner | None = None


def _wasm() -> WasmRunner:
    global _WASM
    if _WASM is None:
        _WASM = WasmRunner()
    return _WASM


def seeds() -> list[bytes]:
    out = []
    for path in sorted((ROOT / "examples" / "flux").glob("*.fasm")):
        text = path.read_bytes()
        out.append(b"\x00" + text)
        out.append(b"\x21" + assemble(text.decode()).to_bytes())
    out.append(b"\x40PUSH 2\nCALL f\nACT 0\nHALT\nf: INC\nRET\n")
    out.append(b"\x60SENSE 0\nSENSE 1\nDIV\nACT 0\nHALT\n")
    out.append(b"\x80SENSE 0\nl: DEC\nDUP\nJNZ l\nACT 0\nHALT\n")
    return out


def test_one(data: bytes) -> None:
    if not data:
        return
    kind, inputs = data[0] & 1, INPUTS[(data[0] >> 1) % len(INPUTS)]
    try:
        if kind == 0:
            image = assemble(data[1:].decode("utf-8", errors="replace"))
        else:
            image = Image.from_bytes(data[1:])
    except (AssemblyError, DecodeError):
        return
    text = disassemble(image)
    assert assemble(text) == image, text
    reference = run(image, inputs, fuel=FUEL)
    verdict = verify(image)
    if not verdict.ok:
        return
    assert reference.trap in (None, "fuel_exhausted", "division_by_zero", "call_overflow"), reference
    decoded = predecode(image.params, verdict.instructions)
    assert run_predecoded(decoded, inputs, fuel=FUEL) == reference
    assert run_compiled(decoded, inputs, fuel=FUEL) == reference
    assert _wasm().run(image, inputs, fuel=FUEL) == reference


if __name__ == "__main__":
    fuzz(test_one)
