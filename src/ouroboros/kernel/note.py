"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes.

A checkpoint commits to the ledger's RFC 6962 Merkle tree at a size: three lines (the
log's origin, the tree size, the base64 root) plus one extension line with the hash of
the newest event body (``head sha256:<hex>``), which lets a reader check a checkpoint
against the hash chain with one row instead of a tree. The note is signed with Ed25519
(signature type ``0x01``); the key id is the first four bytes of
``SHA-256(name || 0x0A || 0x01 || public key)``, as the signed-note spec recommends.
Verifier keys are written the way Go's ``golang.org/x/mod/sumdb/note`` prints them:
``<name>+<key id hex>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass

from ouroboros.kernel.keys import Signer, verify_signature

ED25519 = 0x01
_MAX_NOTE = 64 * 1024
_MAX_SIGNATURES = 64
_DASH = "\u2014 "
_HEAD = re.compile(r"^head (sha256:[0-9a-f]{64})$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


class NoteError(ValueError):
    """A note or checkpoint that is malformed, unsigned by the expected key, or forged."""


def note_key_id(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_raw).digest()[:4]


_NAME = re.compile(r"[^\s+]+")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_raw: bytes

    @property
    def key_id(self) -> bytes:
        return note_key_id(self.name, self.public_raw)

    def vkey(self) -> str:
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{base64.b64encode(bytes([ED25519]) + self.public_raw).decode()}")

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key id>+<base64(0x01 || key)>``; the id must match."""
        parts = vkey.strip().split("+", 2)  # base64 may itself hold '+'
        if len(parts) != 3:
            raise NoteError("a verifier key is <name>+<key id>+<base64 key>")
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as e:
            raise NoteError(f"verifier key is not base64: {e}") from e
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        verifier = cls(name, raw[1:])
        if hex_id.lower() != verifier.key_id.hex():
            raise NoteError("verifier key id does not match its name and public key")
        return verifier


@functools.lru_cache(maxsize=64)
def _signing_line(name: str, public_hex: str) -> tuple[bytes, bytes]:
    """The key id and the signature line's prefix for ``name``'s key: a checkpoint is
    signed on every append, always by the same few keys."""
    _check_name(name)
    return note_key_id(name, bytes.fromhex(public_hex)), f"\n{_DASH}{name} ".encode()


def sign_note(text: bytes, name: str, signer: Signer) -> bytes:
    """A signed note: ``text`` (ending in a newline), a blank line, one signature line."""
    key_id, line = _signing_line(name, signer.public_hex)
    if not text.endswith(b"\n"):
        raise NoteError("note text must end with a newline")
    return text + line + base64.b64encode(key_id + signer.sign(text)) + b"\n"


def open_note(note: bytes, verifier: Verifier) -> bytes:
    """Check ``note`` and return its text. Signatures by unknown keys are ignored; one by
    ``verifier`` must be present and valid (signed-note §Signatures)."""
    if len(note) > _MAX_NOTE:
        raise NoteError(f"note is larger than {_MAX_NOTE} bytes")
    try:
        s = note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError(f"note is not UTF-8: {e}") from e
    if _CONTROL.search(s):
        raise NoteError("note contains control characters")
    split = s.rfind("\n\n")
    if split < 0 or not s.endswith("\n"):
        raise NoteError("note has no signature block (a blank line, then signature lines)")
    text, sig_lines = s[:split + 1], s[split + 2:-1].split("\n")
    if len(sig_lines) > _MAX_SIGNATURES:
        raise NoteError(f"note has more than {_MAX_SIGNATURES} signatures")
    verified = False
    for line in sig_lines:
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        name, _, b64 = line[len(_DASH):].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as e:
            raise NoteError(f"signature by {name!r} is not base64") from e
        if len(raw) < 5:
            raise NoteError(f"signature by {name!r} is too short")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue  # another key (a witness cosignature, a rotated key): not ours to judge
        if not verify_signature(verifier.public_raw.hex(), raw[4:], text.encode()):
            raise NoteError(f"the signature by {name} does not verify: the note was altered")
        verified = True
    if not verified:
        raise NoteError(f"the note carries no signature by {verifier.name}")
    return text.encode()


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    head: str

    def text(self) -> bytes:
        return (f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
                f"head {self.head}\n").encode()

    def sign(self, signer: Signer) -> bytes:
        return sign_note(self.text(), self.origin, signer)

    @classmethod
    def parse_text(cls, text: bytes) -> Checkpoint:
        lines = text.decode().split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is at least three non-empty lines")
        origin, size, root_b64, *ext = lines[:-1]
        if not _SIZE.match(size):
            raise NoteError(f"checkpoint tree size {size[:24]!r} is not a decimal number")
        try:
            root = base64.b64decode(root_b64, validate=True)
        except binascii.Error as e:
            raise NoteError("checkpoint root is not base64") from e
        if len(root) != 32:
            raise NoteError("checkpoint root is not a SHA-256 hash")
        heads = [m.group(1) for m in map(_HEAD.match, ext) if m]
        if len(heads) != 1:
            raise NoteError("checkpoint has no (or more than one) 'head sha256:…' line")
        return cls(origin, int(size), root, heads[0])

    @classmethod
    def open(cls, note: bytes, verifier: Verifier) -> Checkpoint:
        """Verify the note's signature, then parse its text; the origin must be the key's."""
        cp = cls.parse_text(open_note(note, verifier))
        if cp.origin != verifier.name:
            raise NoteError(f"checkpoint is for log {cp.origin!r}, not {verifier.name!r}")
        return cp


def split_notes(data: str) -> list[str]:
    """Split concatenated signed notes whose texts hold no blank line (checkpoints): each
    note is its text, a blank line and its signature lines, and notes are separated by a
    blank line."""
    notes: list[str] = []
    blocks = data.split("\n\n")
    if len(blocks) % 2:
        blocks[-1] = blocks[-1].rstrip("\n")
        if blocks[-1]:
            raise NoteError("trailing text after the last note")
        blocks.pop()
    for text, sigs in zip(blocks[::2], blocks[1::2], strict=True):
        notes.append(f"{text}\n\n{sigs.rstrip(chr(10))}\n")
    return notes
