"""Ledger URLs: ``postgresql://[user[:password]@]host[:port]/dbname[?ledger=NAME&…]``.

``ledger`` (ours, default ``ouroboros``) names the PostgreSQL schema that holds one
ledger, so one database can hold several; ``timeout`` (ours, whole seconds, default
``DEFAULT_TIMEOUT``) bounds how long any one call waits on the server (a frozen or
unreachable server, a lock another session holds: docs/postgresql.md); every other query
parameter is libpq's.

A workspace stores the URL *without* its password (``public``): libpq then takes it from
``PGPASSWORD``, ``PGPASSFILE`` / ``~/.pgpass``, or ``$OURO_LEDGER_URL`` supplies the whole
URL, password included, for the ledger the workspace names (see docs/security.md,
"PostgreSQL ledger").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ouroboros.storage.ledger import LedgerUnavailable

SCHEMES = ("postgresql", "postgres")
DEFAULT_LEDGER = "ouroboros"
#: Seconds one call may wait on the server (``?timeout=``) before it fails.
DEFAULT_TIMEOUT = 30
MAX_TIMEOUT = 86400
ENV_URL = "OURO_LEDGER_URL"
_LEDGER_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


@dataclass(frozen=True)
class LedgerURL:
    """A parsed ledger URL: what to store, what to connect with, which schema."""

    public: str  #: the URL without any password: safe to write into the workspace
    conninfo: str  #: what libpq connects with (password included if one was given)
    ledger: str  #: the schema holding this ledger
    has_password: bool  #: the URL carried a password (which ``public`` leaves out)
    timeout: int = DEFAULT_TIMEOUT  #: seconds one call may wait on the server


def parse(url: str) -> LedgerURL:
    """Validate ``url`` and split it; a malformed one is ``LedgerUnavailable(kind="usage")``."""
    hint = "write it as postgresql://USER@HOST[:PORT]/DBNAME[?ledger=NAME]"
    if not is_postgres_url(url):
        raise LedgerUnavailable(f"not a PostgreSQL URL: {_redact(url)!r}", hint, kind="usage")
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise LedgerUnavailable(f"malformed ledger URL {_redact(url)!r}: {e}", hint,
                                kind="usage") from e
    ledgers = [v for k, v in query if k == "ledger"]
    ledger = ledgers[-1] if ledgers else DEFAULT_LEDGER
    if len(ledgers) > 1 or not _LEDGER_NAME.match(ledger):
        raise LedgerUnavailable(f"bad ledger name {ledger!r} in the URL",
                                "use one ledger=NAME of lower-case letters, digits and _ "
                                "(at most 63)", kind="usage")
    timeouts = [v for k, v in query if k == "timeout"]
    if len(timeouts) > 1 or (timeouts and not (
            timeouts[0].isascii() and timeouts[0].isdigit()
            and 1 <= int(timeouts[0]) <= MAX_TIMEOUT)):
        raise LedgerUnavailable(f"bad timeout {timeouts!r} in the URL",
                                f"use one timeout=SECONDS, a whole number from 1 to "
                                f"{MAX_TIMEOUT} (default {DEFAULT_TIMEOUT})", kind="usage")
    timeout = int(timeouts[0]) if timeouts else DEFAULT_TIMEOUT
    libpq = [(k, v) for k, v in query if k not in ("ledger", "timeout")]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    public_netloc = f"{user}@{hostport}" if at else hostport
    public_query = [(k, v) for k, v in libpq if k != "password"]
    # (not urlunsplit: it drops an empty authority, and libpq reads "postgresql:/db" as
    # a key=value string; "postgresql:///db" means libpq's default host)
    ours = [("ledger", ledger), *([("timeout", str(timeout))] if timeouts else [])]
    # (quote, not urlencode's default quote_plus: libpq reads "+" as a plus sign, so
    # "options=-c%20x%3D1" came back as "-c+x=1", which the server refused)
    public = _unsplit(public_netloc, parts.path,
                      urlencode([*public_query, *ours], quote_via=quote))
    conninfo = _unsplit(parts.netloc, parts.path, urlencode(libpq, quote_via=quote))
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(conninfo)
    except Exception as e:  # psycopg.ProgrammingError: libpq's own parser refused it
        # libpq quotes the token it could not read, which may be the password itself
        secret = userinfo.partition(":")[2] if ":" in userinfo else ""
        reason = _first_line(e).replace(secret, "***") if secret else _first_line(e)
        raise LedgerUnavailable(f"malformed ledger URL {_redact(url)!r}: {reason}", hint,
                                kind="usage") from e
    has_password = ":" in userinfo or len(public_query) < len(libpq)
    return LedgerURL(public, conninfo, ledger, has_password, timeout)


#: ``password=`` in a libpq key=value string: a single-quoted value (with \\ escapes) or
#: a word.
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)


def _unsplit(netloc: str, path: str, query: str) -> str:
    return f"postgresql://{netloc}{path}" + (f"?{query}" if query else "")


def for_workspace(stored: str) -> LedgerURL:
    """The URL to open a workspace's ledger with: the stored (password-less) one, or
    ``$OURO_LEDGER_URL`` when that names the same ledger (it may carry the password)."""
    url = parse(stored)
    env = os.environ.get(ENV_URL)
    if not env:
        return url
    given = parse(env)
    if given.public != url.public:
        raise LedgerUnavailable(f"${ENV_URL} names {given.public}, but this workspace's "
                                f"ledger is {url.public}",
                                f"unset {ENV_URL} or point it at the workspace's ledger",
                                kind="usage")
    return given


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages); also a libpq
    ``key=value`` string given where a URL belongs."""
    if "://" not in url:
        return _CONNINFO_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return urlunsplit((parts.scheme, f"{userinfo}@{hostport}" if at else hostport,
                       parts.path, query, ""))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
