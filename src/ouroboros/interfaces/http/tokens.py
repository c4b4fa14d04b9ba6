"""Bearer tokens for the service layer: issued once, stored as hashes, checked in constant time.

A token reads ``ouro_<id>_<secret>``: ``id`` (12 hex digits) names its entry, ``secret`` is
256 random bits. The workspace keeps only ``sha256(token)`` in ``<home>/serve/tokens.json``
(mode 0600, in a 0700 directory); the token itself is printed once by ``ouro token new``
and never stored. A secret of 256 random bits needs no slow password hash: nobody can
search that space, so one SHA-256 per request is enough.

Every check hashes what it was given and compares it with ``hmac.compare_digest``, against a
dummy hash when the id is unknown or the token malformed, so the time a check takes does not
tell a wrong secret from an unknown id. The server re-reads the file when it changes (a stat
per request), so ``ouro token revoke`` takes effect on the next request without a restart.

This module imports no web framework: the CLI and the server both use it.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.kernel.errors import NotFound, UsageError
from ouroboros.storage.files import UnsafeFile, flocked, read_json_file

TOKENS_FILE = "tokens.json"
SERVE_DIR = "serve"
#: The most of the token file read (re-read by the server when it changes): an entry is
#: about 250 bytes, so this is a quarter of a million tokens.
MAX_TOKENS_FILE = 64 << 20
_TOKEN = re.compile(r"^ouro_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
#: Names telemetry sources use for the runtime itself and for events stored before
#: sources were stamped: the OTLP receiver stamps events with the token's name, so a token
#: with one of these names could pass its spans off as the runtime's own.
RESERVED_NAMES = frozenset({"local", "unknown"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DUMMY = hashlib.sha256(b"ouroboros: no such token").hexdigest()


class Role(enum.StrEnum):
    """What a token may do; each role includes every right of the roles before it."""

    read = "read"
    submit = "submit"
    approve = "approve"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


#: Roles whose tokens sign approvals and so must name a keyring key.
KEYED_ROLES = (Role.approve, Role.admin)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret (only the hash of the whole token is kept)."""

    id: str
    name: str
    role: Role
    key: str | None
    created: str
    hash: str

    def public(self) -> dict[str, Any]:
        """What ``ouro token list`` shows: everything but the hash."""
        return {"id": self.id, "name": self.name, "role": self.role.value, "key": self.key,
                "created": self.created}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, role and bound approver key."""

    name: str
    role: Role
    key: str | None
    token_id: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenStore:
    """``<home>/serve/tokens.json``: the hashes of the workspace's bearer tokens."""

    def __init__(self, home: Path | str) -> None:
        self.dir = Path(home) / SERVE_DIR
        self.path = self.dir / TOKENS_FILE
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._by_id: dict[str, TokenInfo] = {}

    # -- writing (the CLI) --------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[TokenInfo]]:
        """The entries under an exclusive lock; what the block leaves in the list is saved."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        with flocked(self.dir / "tokens.lock"):
            entries = list(self._read().values())
            yield entries
            self._write(entries)

    def _write(self, entries: list[TokenInfo]) -> None:
        data = {"version": 1, "tokens": [{**asdict(e), "role": e.role.value} for e in entries]}
        tmp = self.path.with_name(TOKENS_FILE + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def new(self, name: str, role: Role | str, key: str | None = None) -> tuple[str, TokenInfo]:
        """Issue a token; returns the token (shown once, never stored) and its entry.

        Raises:
            UsageError: an invalid or taken name, an unknown role, a key on a role that
                signs nothing, or a keyed role without a key.
        """
        if not _NAME.match(name):
            raise UsageError(f"invalid token name {name!r}",
                             "use letters, digits and . _ @ - (at most 64)")
        if name.lower() in RESERVED_NAMES:
            raise UsageError(f"the token name {name!r} is reserved",
                             "telemetry from the runtime itself is stamped with it; pick "
                             "another name")
        try:
            role = Role(role)
        except ValueError:
            raise UsageError(f"unknown role {role!r}",
                             f"use one of {', '.join(r.value for r in Role)}") from None
        if role in KEYED_ROLES and not key:
            raise UsageError(f"an {role.value} token signs approvals and needs --key KEYNAME",
                             "name a keyring key with the 'approve' right (or a root key)")
        if role not in KEYED_ROLES and key:
            raise UsageError(f"a {role.value} token signs nothing; --key is for approve "
                             "and admin tokens")
        token_id = secrets.token_hex(6)
        token = f"ouro_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(token_id, name, role, key, _now(), hash_token(token))
        with self._locked() as entries:
            if any(e.name == name for e in entries):
                raise UsageError(f"a token named {name!r} exists",
                                 f"revoke it first (`ouro token revoke {name}`) or pick "
                                 "another name")
            entries.append(info)
        return token, info

    def revoke(self, ident: str) -> TokenInfo:
        """Delete a token by name or id.

        Raises:
            NotFound: no token has that name or id.
        """
        with self._locked() as entries:
            found = [e for e in entries if ident in (e.name, e.id)]
            if not found:
                raise NotFound(f"no token named {ident!r}", "see `ouro token list`")
            entries.remove(found[0])
        return found[0]

    def list(self) -> list[TokenInfo]:
        return sorted(self._read().values(), key=lambda e: (e.created, e.name))

    # -- reading (the server) -----------------------------------------------------------
    def _read(self) -> dict[str, TokenInfo]:
        try:  # not a link, FIFO or device: a request thread must never wait on it
            data = read_json_file(self.path, MAX_TOKENS_FILE)
        except UnsafeFile as e:  # its message names the file
            raise UsageError(f"{e}", "restore it or delete it and issue new tokens") from None
        if data is None:
            return {}
        try:
            return {e["id"]: TokenInfo(e["id"], e["name"], Role(e["role"]), e.get("key"),
                                       e["created"], e["hash"]) for e in data["tokens"]}
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{self.path} is damaged: {e}",
                             "restore it or delete it and issue new tokens") from None

    def _current(self) -> dict[str, TokenInfo]:
        """The entries, re-read whenever the file changed (inode, size or mtime)."""
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            seen = (0, 0, 0)
        if seen != self._seen:
            with self._lock:
                self._by_id = self._read() if seen != (0, 0, 0) else {}
                self._seen = seen
        return self._by_id

    def verify(self, token: str) -> Principal | None:
        """The principal a token stands for, or None; the same work whatever is wrong."""
        match = _TOKEN.match(token)
        entry = self._current().get(match.group(1)) if match else None
        expected = entry.hash if entry is not None else _DUMMY
        ok = hmac.compare_digest(hash_token(token), expected)
        if not ok or entry is None:
            return None
        return Principal(entry.name, entry.role, entry.key, entry.id)
