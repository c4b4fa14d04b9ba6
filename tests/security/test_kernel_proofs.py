"""Class 2: Merkle inclusion and consistency proofs (RFC 6962 / RFC 9162 §2.1).

Published vectors (transparency-dev/merkle, the certificate-transparency reference tree),
hypothesis properties over random trees (every honest proof verifies, every tampered one
fails), and the CLI round trip a third party runs with only a proof and the log's key.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.kernel import Runtime
from ouroboros.kernel.merkle import (
    MerkleAccumulator,
    ProofError,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

from .kernelkit import ouro, routing

VECTORS = json.loads((Path(__file__).parent / "data" / "merkle_vectors.json").read_text())


def _b(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["file"][9:])
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    args = (case["leafIdx"], case["treeSize"], _b(case["leafHash"]),
            [_b(p) for p in case["proof"] or []], _b(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: c["file"][9:])
def test_consistency_vectors(case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], _b(case["root1"]), _b(case["root2"]),
            [_b(p) for p in case["proof"] or []])
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_the_reference_tree_roots_and_proofs_are_reproduced() -> None:
    """The certificate-transparency reference leaves: every root, and the published
    proofs generated from the leaves, byte for byte."""
    leaves = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
    for n in range(len(leaves) + 1):
        assert merkle_root(leaves[:n]).hex() == VECTORS["roots_hex"][n]
    hashes = list(enumerate(leaf_hash(x) for x in leaves))
    happy = [c for c in VECTORS["inclusion"] + VECTORS["consistency"]
             if c["desc"] == "happy path"]
    assert len(happy) == 10
    for case in happy:
        ranges = (inclusion_ranges(case["leafIdx"], case["treeSize"]) if "leafIdx" in case
                  else consistency_ranges(case["size1"], case["size2"]))
        assert [base64.b64encode(h).decode() for h in hash_ranges(ranges, hashes)] == \
            (case["proof"] or [])


def _tree(n: int) -> tuple[list[bytes], list[bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    roots = []
    acc = MerkleAccumulator()
    for leaf in leaves:
        acc.append_leaf(leaf)
        roots.append(acc.root())
    return leaves, roots


def _flip(items: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(items)
    b = bytearray(out[which])
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    out[which] = bytes(b)
    return out


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_every_inclusion_proof_verifies_and_every_tamper_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70))
    i = data.draw(st.integers(0, n - 1))
    leaves, roots = _tree(n)
    proof = hash_ranges(inclusion_ranges(i, n), enumerate(leaves))
    verify_inclusion(i, n, leaves[i], proof, roots[-1])
    bit = data.draw(st.integers(0, 255))
    attacks: list[tuple[Any, ...]] = [
        (i, n, _flip([leaves[i]], 0, bit)[0], proof, roots[-1]),
        (i, n, leaves[i], proof, _flip([roots[-1]], 0, bit)[0]),
        (i, n, leaves[i], [*proof, proof[-1] if proof else roots[-1]], roots[-1]),
    ]  # (the size is not attacked alone: it is signed together with the root)
    if proof:
        attacks.append((i, n, leaves[i], proof[:-1], roots[-1]))
        attacks.append((i, n, leaves[i], _flip(proof, data.draw(
            st.integers(0, len(proof) - 1)), bit), roots[-1]))
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        attacks.append((other, n, leaves[i], proof, roots[-1]))
    for args in attacks:
        with pytest.raises(ProofError):
            verify_inclusion(*args)


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_every_consistency_proof_verifies_and_every_tamper_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70))
    m = data.draw(st.integers(1, n))
    leaves, roots = _tree(n)
    proof = hash_ranges(consistency_ranges(m, n), enumerate(leaves))
    verify_consistency(m, n, roots[m - 1], roots[n - 1], proof)
    if m == n:
        return
    bit = data.draw(st.integers(0, 255))
    attacks: list[tuple[Any, ...]] = [
        (m, n, _flip([roots[m - 1]], 0, bit)[0], roots[n - 1], proof),
        (m, n, roots[m - 1], _flip([roots[n - 1]], 0, bit)[0], proof),
        (m, n, roots[m - 1], roots[n - 1], _flip(proof, data.draw(
            st.integers(0, len(proof) - 1)), bit)),
        (m, n, roots[m - 1], roots[n - 1], proof[:-1]),
        (n, m, roots[n - 1], roots[m - 1], proof),
    ]
    # A log that rewrote one old leaf: the new root is honest for the new leaves, but the
    # old checkpoint's root is not a prefix of it.
    j = data.draw(st.integers(0, m - 1))
    forked = list(leaves)
    forked[j] = leaf_hash(b"rewritten")
    forked_root = merkle_root([]) if not forked else _root(forked)
    attacks.append((m, n, roots[m - 1], forked_root,
                    hash_ranges(consistency_ranges(m, n), enumerate(forked))))
    for args in attacks:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def _root(leaf_hashes: list[bytes]) -> bytes:
    acc = MerkleAccumulator()
    for h in leaf_hashes:
        acc.append_leaf(h)
    return acc.root()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("proofs") / "ws"
    rt = Runtime.init(home, checkpoint_interval=5)
    routing(rt, 12)
    vkey = rt.verifier.vkey()
    rt.close()
    return home, vkey


def test_a_third_party_checks_an_inclusion_proof_with_only_the_file_and_the_key(
        workspace: tuple[Path, str], tmp_path: Path) -> None:
    home, vkey = workspace
    proof = tmp_path / "seven.tlog-proof"
    r = ouro("proof", "inclusion", "7", "-o", str(proof), home=home)
    assert r.returncode == 0, r.stderr
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\nextra ")
    outsider = tmp_path / "elsewhere"
    outsider.mkdir()
    r = ouro("proof", "check", str(proof), "--vkey", vkey, "--json", cwd=outsider)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["index"] == 7
    # The proof proves the event: its body is in the file.
    body = base64.b64decode(proof.read_text().split("\n")[1][len("extra "):])
    assert json.loads(body)["seq"] == 7


@pytest.mark.parametrize("attack", ["event", "path", "size", "signature", "index"])
def test_a_tampered_inclusion_proof_fails_the_check(workspace: tuple[Path, str],
                                                    tmp_path: Path, attack: str) -> None:
    home, vkey = workspace
    lines = ouro("proof", "inclusion", "3", home=home).stdout.split("\n")
    if attack == "event":
        body = json.loads(base64.b64decode(lines[1][6:]))
        body["payload"]["author"] = "someone-else"
        lines[1] = "extra " + base64.b64encode(json.dumps(body).encode()).decode()
    elif attack == "path":
        lines[3] = base64.b64encode(b"\x00" * 32).decode()
    elif attack == "size":
        size_line = lines.index("") + 2
        lines[size_line] = str(int(lines[size_line]) + 1)
    elif attack == "signature":
        lines[-2] = lines[-2][:-6] + "AAAAA="
    else:
        lines[2] = "index 4"
    (tmp_path / "p").write_text("\n".join(lines))
    r = ouro("proof", "check", str(tmp_path / "p"), "--vkey", vkey, cwd=tmp_path)
    assert r.returncode == 1, (attack, r.stdout, r.stderr)
    assert "the proof does not hold" in r.stderr and "Traceback" not in r.stderr


def test_a_consistency_proof_binds_an_old_checkpoint_to_the_new(
        workspace: tuple[Path, str], tmp_path: Path) -> None:
    home, vkey = workspace
    r = ouro("proof", "consistency", "4", "--json", home=home)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    (tmp_path / "c").write_text(data["file"])
    (tmp_path / "old").write_text(data["old_checkpoint"])
    r = ouro("proof", "check", str(tmp_path / "c"), "--vkey", vkey, "--checkpoint",
             str(tmp_path / "old"), cwd=tmp_path)
    assert r.returncode == 0 and "extends its tree of size 4" in r.stdout, r.stderr
    # The checkpoint the checker holds must be one of the proof's.
    other = json.loads(ouro("proof", "consistency", "5", "--json", home=home).stdout)
    (tmp_path / "other").write_text(other["old_checkpoint"])
    r = ouro("proof", "check", str(tmp_path / "c"), "--vkey", vkey, "--checkpoint",
             str(tmp_path / "other"), cwd=tmp_path)
    assert r.returncode == 1
    # A swapped proof hash breaks it.
    lines = data["file"].split("\n")
    lines[1], lines[2] = lines[2], lines[1]
    (tmp_path / "bad").write_text("\n".join(lines))
    r = ouro("proof", "check", str(tmp_path / "bad"), "--vkey", vkey, cwd=tmp_path)
    assert r.returncode == 1


def test_proof_check_needs_a_key_and_a_readable_file(workspace: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    home, vkey = workspace
    (tmp_path / "p").write_text(ouro("proof", "inclusion", "1", home=home).stdout)
    r = ouro("proof", "check", str(tmp_path / "p"), cwd=tmp_path,
             home=tmp_path / "no-workspace")
    assert r.returncode == 2 and "--vkey" in r.stderr
    r = ouro("proof", "check", str(tmp_path / "p"), "--vkey", "name+abcd+AAAA", cwd=tmp_path)
    assert r.returncode == 2
    (tmp_path / "junk").write_bytes(b"\xff\xfe not a proof")
    r = ouro("proof", "check", str(tmp_path / "junk"), "--vkey", vkey, cwd=tmp_path)
    assert r.returncode == 2 and "not a proof file" in r.stderr
    # Another log's key does not vouch for this log's checkpoint.
    other = Runtime.init(tmp_path / "other")
    r = ouro("proof", "check", str(tmp_path / "p"), "--vkey", other.verifier.vkey(),
             cwd=tmp_path)
    other.close()
    assert r.returncode == 1


def test_proofs_for_events_beyond_the_checkpoint_are_refused(
        workspace: tuple[Path, str]) -> None:
    home, _ = workspace
    r = ouro("proof", "inclusion", "999", home=home)
    assert r.returncode == 2 and "no event 999" in r.stderr
    r = ouro("proof", "consistency", "0", home=home)
    assert r.returncode == 2
