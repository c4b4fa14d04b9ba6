"""``ouro migrate --to postgresql://…``: move a workspace's SQLite ledger to PostgreSQL.

All of it happens inside the SQLite ledger's append lock, so no writer slips an event in
between the copy and the switch:

1. copy every event, snapshot and patch-index row into the (empty) target in one
   transaction; a target that holds anything is refused;
2. open the copy as the kernel would and ``verify`` it in full: chain, signatures,
   replay, snapshots, patch index, and the workspace's signed checkpoint and witnesses
   (which stay in the workspace, so the copy must match what they vouch for);
3. seal the old ledger (an insert trigger that names where it went: a process that had the
   workspace open cannot grow it any more), then switch ``workspace.json`` to the URL
   (an atomic rename).

A failure before the switch empties the target, lifts the seal and leaves the workspace
on SQLite, as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ouroboros.kernel.errors import UsageError
from ouroboros.kernel.workspace import Workspace
from ouroboros.storage.ledger import Head, LedgerUnavailable, StoredEvent


@dataclass(frozen=True)
class MigrateReport:
    url: str
    events: int
    snapshots: int
    index_rows: int
    head: str


def migrate(ws: Workspace, url: str, *,
            before_switch: Callable[[], None] | None = None) -> MigrateReport:
    """Copy ``ws``'s ledger into the empty PostgreSQL ledger at ``url``, verify the copy
    and switch the workspace to it. ``before_switch`` runs after the verification (tests
    inject a failure there)."""
    from ouroboros.kernel.runtime import Runtime, ledger_error, ledger_public
    from ouroboros.storage.postgres import PostgresLedger
    from ouroboros.storage.postgres.url import parse
    from ouroboros.storage.sqlite import SQLiteLedger

    if ws.ledger_url is not None:
        raise UsageError(f"this workspace's ledger is already on PostgreSQL ({ws.ledger_url})",
                         "migrate copies a SQLite ledger")
    public = ledger_public(url)
    durable = bool(ws.config.get("durable", False))
    source = SQLiteLedger(ws.ledger_path, durable=durable)
    reader = SQLiteLedger(ws.ledger_path, durable=durable)
    try:
        try:
            target = PostgresLedger(parse(url), ws.home / "ledger.checkpoint",
                                    durable=durable, create=True)
        except LedgerUnavailable as e:
            raise ledger_error(e) from e
        result: list[MigrateReport] = []

        def copy(head: Head) -> Sequence[StoredEvent]:
            snapshots = [s for s in (reader.snapshot(q) for q in reader.snapshot_seqs())
                         if s is not None]
            index = list(reader.patch_index())
            try:
                n = target.copy_in(head.since(0), snapshots, iter(index), reader.read)
            except LedgerUnavailable as e:
                raise ledger_error(e) from e
            if n != head.next_seq:
                target.discard()
                raise UsageError(f"copied {n} events of {head.next_seq}", "try again")
            try:
                config: dict[str, Any] = {**ws.config, "ledger": public}
                check = Runtime(Workspace(ws.home, config),
                                PostgresLedger(parse(url), ws.home / "ledger.checkpoint",
                                               durable=durable))
                try:
                    report = check.verify()
                finally:
                    check.close()
                if before_switch is not None:
                    before_switch()
            except BaseException:
                target.discard()
                raise
            result.append(MigrateReport(public, report.events, len(snapshots), len(index),
                                        report.head))
            return []

        def switch(_events: Sequence[StoredEvent]) -> None:
            # Still under the old ledger's writers' lock: seal it, then point the
            # workspace at the copy. If the switch fails, undo the seal and the copy.
            reader.seal_moved(public)
            try:
                Workspace(ws.home, {**ws.config, "ledger": public}).save()
            except BaseException:
                reader.seal_moved(None)
                target.discard()
                raise

        source.append(copy, switch)
        target.close()
        return result[0]
    finally:
        source.close()
        reader.close()
