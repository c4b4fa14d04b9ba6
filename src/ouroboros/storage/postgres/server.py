"""A throw-away PostgreSQL server in a temporary folder (tests, benchmarks, trying it out).

``initdb`` + ``pg_ctl`` from the Debian packages (``/usr/lib/postgresql/15/bin``), on a
free port of 127.0.0.1 and a unix socket in the folder. Local socket logins are trusted;
TCP logins need the superuser's password (so a wrong password can be tried for real).
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system
user that the Debian package creates, and the folder is handed to it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from ouroboros.storage.files import open_regular

BINDIR = Path(os.environ.get("OURO_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "ouro"


class ServerError(RuntimeError):
    pass


class LocalServer:
    """``with LocalServer() as pg: pg.url("db")`` — stopped and deleted on exit."""

    def __init__(self, *, fsync: bool = True, bindir: Path = BINDIR,
                 settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.settings = settings or {}
        self.password = secrets.token_hex(16)
        self.root = Path(tempfile.mkdtemp(prefix="ouro-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._running = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LocalServer:
        for tool in ("initdb", "pg_ctl"):
            if not (self.bindir / tool).is_file():
                raise ServerError(f"{self.bindir / tool} is missing: install the Debian "
                                  "package postgresql-15 (scripts/bootstrap.sh does)")
        os.chmod(self.root, 0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        self._hand_over()
        self._run(self.bindir / "initdb", "-D", self.data, "-U", SUPERUSER, "-A", "trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                  "--no-instructions")
        pwfile.unlink()
        options = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                   "unix_socket_directories": str(self.root), "max_connections": "300",
                   "fsync": "on" if self.fsync else "off",
                   "full_page_writes": "on" if self.fsync else "off", **self.settings}
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            for k, v in options.items():
                fh.write(f"{k} = '{v}'\n")
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log",
                  "-w", "-t", "60", "start")
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                      "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----------------------------------------------------------------- URLs
    def url(self, dbname: str = "postgres", *, ledger: str | None = None,
            tcp: bool = False, password: str | None = None) -> str:
        """A URL for ``dbname``: over the unix socket (trusted), or over TCP (where a
        password is needed: ``password``, else none in the URL)."""
        query = f"?ledger={ledger}" if ledger else ""
        if tcp:
            auth = f"{SUPERUSER}:{quote(password, safe='')}" if password else SUPERUSER
            return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}{query}"
        sep = "&" if query else "?"
        return (f"postgresql://{SUPERUSER}@/{dbname}{query}{sep}host="
                f"{quote(str(self.root), safe='')}&port={self.port}")

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    # ----------------------------------------------------------------- internals
    def _hand_over(self) -> None:
        if os.geteuid() != 0:
            return
        owner = _server_user()
        for path in (self.root, *self.root.rglob("*")):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, *argv: object, check: bool = True) -> None:
        cmd = [str(a) for a in argv]
        if os.geteuid() == 0:
            owner = _server_user()
            cmd = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}",
                   "--clear-groups", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              cwd=self.root, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            tail = log_tail(self.root / "server.log")
            raise ServerError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                              f"{proc.stderr.strip()[-2000:]}\n{tail}")


#: How much of the server's log a failure shows: its last lines hold the cause.
LOG_TAIL = 2000


def log_tail(path: Path, chars: int = LOG_TAIL) -> str:
    """The last ``chars`` characters of the server's log, "" when there is none. Only the
    end is read (a server that logged for days has a log of gigabytes), and only from a
    regular file: the folder belongs to the ``postgres`` account when run as root, so a
    link or FIFO there is refused (named), never followed or waited on."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return ""
    except OSError as e:  # a link, FIFO, device or folder (it names it); no access
        return f"(no log: {e})"
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - 4 * chars)  # UTF-8: at most 4 bytes a character
        data = os.pread(fd, size - start, start)
    except OSError as e:
        return f"(no log: {path}: {e.strerror or e})"
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")[-chars:]


def _server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError("running as root needs the 'postgres' system user to run the "
                          "server (the postgresql-15 package creates it)") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
