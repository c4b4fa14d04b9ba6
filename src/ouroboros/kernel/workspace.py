"""The workspace on disk: ``ledger.db``, ``keys/``, ``blobs/`` and ``workspace.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ouroboros.kernel.errors import IntegrityError, UsageError, WorkspaceMissing
from ouroboros.storage.files import UnsafeFile, read_json_file, replace_file

CONFIG_NAME = "workspace.json"
#: The most of workspace.json read: the runtime writes a few hundred bytes (a genesis
#: hash, a ledger URL, a few flags); anything near a MiB was not written by it.
MAX_CONFIG = 1 << 20


def resolve_home(home: Path | str | None = None) -> Path:
    """An explicit path, else ``$OURO_HOME``, else ``./.ouro``."""
    if home is not None:
        return Path(home)
    env = os.environ.get("OURO_HOME")
    return Path(env) if env else Path.cwd() / ".ouro"


@dataclass(frozen=True)
class Workspace:
    home: Path
    config: dict[str, Any]

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.db"

    @property
    def ledger_url(self) -> str | None:
        """The PostgreSQL ledger's URL (without password), or ``None`` for SQLite."""
        url = self.config.get("ledger")
        return None if url is None else str(url)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @classmethod
    def load(cls, home: Path) -> Workspace:
        path = home / CONFIG_NAME
        try:
            config = read_json_file(path, MAX_CONFIG)
        except UnsafeFile as e:  # a link, FIFO, device, huge, not UTF-8, not an object
            raise IntegrityError(str(e), hint="restore workspace.json from a backup, or "
                                 "remove the workspace and run `ouro init`") from None
        except OSError as e:  # --home is a file, a symlink loop, a folder we may not read
            raise WorkspaceMissing(f"no Ouroboros workspace at {home}: {e.strerror}",
                                   "run `ouro init` or pass --home / set OURO_HOME") from None
        if config is None:
            raise WorkspaceMissing(f"no Ouroboros workspace at {home}",
                                   "run `ouro init` or pass --home / set OURO_HOME")
        return cls(home, config)

    @classmethod
    def create(cls, home: Path, config: dict[str, Any]) -> Workspace:
        if (home / CONFIG_NAME).exists():
            raise UsageError(f"a workspace already exists at {home}", _existing_hint(home))
        home.mkdir(parents=True, exist_ok=True)
        ws = cls(home, config)
        ws.save()
        return ws

    def save(self) -> None:
        # durable: it pins the genesis and names the ledger; an empty file after a power
        # loss would be a workspace nothing can open
        replace_file(self.home / CONFIG_NAME,
                     json.dumps(self.config, indent=2, sort_keys=True) + "\n", durable=True)


def _existing_hint(home: Path) -> str:
    """`init` over a workspace: one whose own `init` was killed before it pinned its
    genesis (see `Runtime.init`) gets the way to start over."""
    try:
        pinned = "genesis" in (read_json_file(home / CONFIG_NAME, MAX_CONFIG) or {})
    except OSError:  # unreadable, or planted (see `Workspace.load`)
        pinned = False
    if pinned:
        return "use it, or pick another --home"
    return (f"use it, or pick another --home; if `ouro init` was interrupted there "
            f"(`ouro verify` fails), remove {home} and run `ouro init` again")
