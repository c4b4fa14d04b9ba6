"""Ed25519 keys and the workspace keyring.

Key ids are derived from the public key (``sha256`` of its raw 32 bytes, hex), so a key id
can never name two keys. Private keys are PKCS#8 PEM files with mode 0600 in a 0700 folder,
encrypted with the best available scheme when ``OURO_KEY_PASSPHRASE`` is set; a key file
anyone else may read, or a link, is refused. Every keyring opened in this process is listed
by `keyring_roots`, so the build jail can refuse to show one to a build.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from ouroboros.kernel.errors import KeyError_
from ouroboros.storage.files import (
    UnsafeFile,
    create_new,
    link_new,
    read_text_file,
    sweep_unlocked,
)

if TYPE_CHECKING:  # cryptography reads and writes key files only: imported where it does
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PUBLIC_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_TEMP = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.key\.[0-9a-f]{16}")
PASSPHRASE_ENV = "OURO_KEY_PASSPHRASE"
_ROOTS: set[Path] = set()


def keyring_roots() -> frozenset[Path]:
    """Every keyring folder opened in this process (absolute)."""
    return frozenset(_ROOTS)


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def verify_signature(public_hex: str, signature: bytes, data: bytes) -> bool:
    """Ed25519 verification through libsodium (PyNaCl), about twice as fast as OpenSSL's
    here; keys and signatures are the same bytes either way."""
    if len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + data, bytes.fromhex(public_hex))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """A named private key: the one place that produces signatures.

    Keys are generated and stored with ``cryptography``; signing goes through libsodium,
    which is faster here. Ed25519 signatures are deterministic, so both give the same bytes.
    """

    name: str
    private: Ed25519PrivateKey
    public_hex: str
    key_id: str
    _sodium_secret: bytes = field(repr=False, default=b"")

    @classmethod
    def from_private(cls, name: str, private: Ed25519PrivateKey) -> Signer:
        from cryptography.hazmat.primitives import serialization

        raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        sodium_public, secret = crypto_sign_seed_keypair(seed)
        if sodium_public != raw:  # the signature memo in dsse relies on this equality
            raise KeyError_(f"key {name!r}: libsodium and cryptography derive different "
                            "public keys from one seed")
        return cls(name, private, raw.hex(), key_id_of(raw), secret)

    @classmethod
    def generate(cls, name: str) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls.from_private(name, Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        signed: bytes = crypto_sign(data, self._sodium_secret)
        return signed[:64]


class Keyring:
    """``keys/<name>.key`` (private, 0600) and ``keys/<name>.pub`` in the workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._loaded: dict[str, Signer] = {}
        _ROOTS.add(Path(os.path.abspath(self.root)))
        _sweep(self.root)

    def _check_name(self, name: str) -> None:
        if not _NAME.match(name):
            raise KeyError_(f"invalid key name {name!r}",
                            "use letters, digits, '.', '_' or '-' (at most 64)")

    def new(self, name: str) -> Signer:
        from cryptography.hazmat.primitives import serialization

        self._check_name(name)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        path = self.root / f"{name}.key"
        if path.exists():
            raise _taken(name)
        signer = Signer.generate(name)
        passphrase = _passphrase()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        pem = signer.private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption)
        # Written whole and fsynced before it gets its name, then linked into place: a
        # crash leaves the name free or the key complete, never an empty key file that is
        # listed, "already exists" and loads as nothing (link, unlike rename, never
        # replaces another key). The file has no name until the link where the system
        # allows it (O_TMPFILE); elsewhere a named temporary, locked while it lives, is
        # swept by the next keyring open if a kill left it (`_sweep`).
        try:
            link_new(path, pem, lambda: f".{name}.key.{secrets.token_hex(8)}")
        except FileExistsError:
            raise _taken(name) from None
        self._write_public(name, signer.public_hex)
        return signer

    def discard(self, name: str, key_id: str) -> None:
        """Remove a key this process just made (``key_id`` guards against removing another
        key under the name): the private key first, so the name is never listed without
        it; a missing file is already gone."""
        if self.public(name)[0] != key_id:  # (public checks the name)
            raise KeyError_(f"key {name!r} is not the key {key_id[:16]}", "it was left as it is")
        for suffix in (".key", ".pub"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / f"{name}{suffix}")
        self._loaded.pop(name, None)

    def _write_public(self, name: str, public_hex: str) -> None:
        tmp = self.root / f".{name}.pub.{secrets.token_hex(8)}"
        create_new(tmp, public_hex + "\n")
        os.replace(tmp, self.root / f"{name}.pub")

    def load(self, name: str) -> Signer:
        """Load a private key (cached: key files never change under a name)."""
        cached = self._loaded.get(name)
        if cached is not None:  # before the imports: this runs once per submit
            return cached
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._check_name(name)
        path = self.root / f"{name}.key"
        pem = _read_private(path, name, self.root)
        encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
        passphrase = _passphrase() if encrypted else None
        if encrypted and passphrase is None:
            raise KeyError_(f"key {name!r} is encrypted and no passphrase was given",
                            f"set {PASSPHRASE_ENV} to the key's passphrase")
        try:
            private = serialization.load_pem_private_key(pem, password=passphrase)
        except ValueError as e:
            if encrypted:
                raise KeyError_(f"cannot decrypt key {name!r}: wrong passphrase",
                                f"set {PASSPHRASE_ENV} to the passphrase it was made with"
                                ) from None
            raise KeyError_(f"key file {path} is not a valid private key: {e}") from e
        except (TypeError, UnsupportedAlgorithm) as e:
            raise KeyError_(f"key file {path} cannot be loaded: {e}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyError_(f"key file {path} is not an Ed25519 key")
        signer = Signer.from_private(name, private)
        self._loaded[name] = signer
        return signer

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.stem for p in self.root.glob("*.key"))

    def public(self, name: str) -> tuple[str, str]:
        """(key id, public hex) of a named key, from its ``.pub`` file."""
        self._check_name(name)
        try:  # a .pub is 65 bytes; a link, FIFO, huge or non-UTF-8 one is not the runtime's
            public_hex = (read_text_file(self.root / f"{name}.pub", 4096) or "").strip()
        except UnsafeFile:
            public_hex = ""
        if not _PUBLIC_HEX.fullmatch(public_hex):
            if not (self.root / f"{name}.key").is_file():
                raise KeyError_(f"no key named {name!r}", "see `ouro key list`")
            # `key new` was stopped between the key and its .pub, or the .pub is not one
            # the runtime wrote: derive it again from the private key
            public_hex = self.load(name).public_hex
            self._write_public(name, public_hex)
        return key_id_of(bytes.fromhex(public_hex)), public_hex


def _taken(name: str) -> KeyError_:
    return KeyError_(f"key {name!r} already exists", "pick another name")


def _sweep(root: Path) -> None:
    """Remove the temporary copies of private keys a killed `key new` left (``.NAME.key.``
    and 16 hex digits): no hidden second copy of a key outlives the crash. A temporary a
    live writer holds (its lock) is left; a read-only keyring is left as it is."""
    sweep_unlocked(root, lambda entry: _KEY_TEMP.fullmatch(entry) is not None)


def _read_private(path: Path, name: str, root: Path) -> bytes:
    """A private key file's bytes: not a link, and readable by its owner alone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyError_(f"no key named {name!r} in {root}",
                        "create it with `ouro key new NAME`") from None
    except OSError as e:
        raise KeyError_(f"key file {path} cannot be opened safely: {e.strerror}",
                        "a key file must be a regular file, not a link") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyError_(f"key file {path} is not a regular file")
        if mode & 0o077:
            raise KeyError_(f"key file {path} is open to others (mode {mode & 0o777:04o})",
                            f"run `chmod 600 {path}`")
        return fh.read()
