"""Restore to a point in time: base backup + archived WAL into a fresh data directory, replayed to a target.

Steps (each refuses rather than restoring silently wrong data):
1. `plan` – choose base backup and WAL range for targetTime / targetLSN / latest (domain/backups/pitr);
   a target outside the window, in a gap, or "latest" behind a gap is refused with the reason.
2. `prepare_data_directory` – extract the base tar (checksum re-checked), fetch every WAL segment of
   the range into a local directory with its checksum verified (a corrupt segment refuses the restore),
   write recovery settings: restore_command copying from that directory, the target,
   recovery_target_action=promote, and recovery.signal.
3. `recover` – start the server, wait until it has promoted. PostgreSQL stops with "recovery ended
   before configured recovery target was reached" when no commit after a time target was archived;
   the plan guarantees every commit before the target is in the fetched WAL, so replaying all of it is
   the target state and recovery is restarted without the target.
In Kubernetes step 2 runs in the restore Job against the database's volume (`prepare_in_place`: the old
data directory is moved aside on the same volume, never deleted, and a marker makes a re-run with the same
stamp a no-op) and the database itself replays when it starts; the scheduled verification runs all three
against a throwaway directory. Owns the sequence, not the server process (clients/pginstance).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.pginstance import LocalServer, RecoveryFailed, chown_tree
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.pitr import ArchivedSegment, RestorePlan, TargetRefused
from tradesense_operator.domain.backups.wal import DEFAULT_SEGMENT_SIZE, Lsn, segment_name
from tradesense_operator.services.backups import wal_archive
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.wal_archive import CorruptObject, Inventory

log = logging.getLogger(__name__)

TARGET_NOT_REACHED = "recovery ended before configured recovery target was reached"
SETTINGS_MARK = "# tradesense-operator point-in-time recovery"


@dataclass(frozen=True)
class PreparedRestore:
    """A data directory ready to start, and what it will replay."""

    plan: RestorePlan
    data_dir: Path
    wal_dir: Path
    segments: list[str]


def plan(
    store: BackupStore, label: str, *, now: datetime, target_time: datetime | None = None,
    target_lsn: Lsn | None = None, segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> tuple[RestorePlan, Inventory]:
    """The plan for a target (neither: latest); RestoreRefused with the reason when it cannot be honoured."""
    inv = wal_archive.list_inventory(store, label, segment_size)
    try:
        chosen = pitr.plan_restore(inv.backups, inv.segments, now=now, target_time=target_time,
                                   target_lsn=target_lsn, segment_size=segment_size)
    except TargetRefused as exc:
        raise RestoreRefused(str(exc)) from exc
    return chosen, inv


def _segments_for(inv: Inventory, chosen: RestorePlan) -> list[ArchivedSegment]:
    best = {s.segno: s for s in pitr.best_copies(inv.segments)
            if s.timeline == chosen.window.run.timeline and chosen.first_segno <= s.segno <= chosen.last_segno}
    missing = [n for n in range(chosen.first_segno, chosen.last_segno + 1) if n not in best]
    if missing:
        raise RestoreRefused(f"WAL segments {missing[0]}..{missing[-1]} vanished from the archive since planning")
    return [best[n] for n in sorted(best)]


def prepare_data_directory(
    store: BackupStore, chosen: RestorePlan, inv: Inventory, *, data_dir: Path, wal_dir: Path,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> PreparedRestore:
    """Extract the base backup and fetch the WAL range (checksums verified), then write recovery settings."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RestoreRefused(f"{data_dir} is not empty; a point-in-time restore needs a fresh data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    wal_dir.mkdir(parents=True, exist_ok=True)
    base_name = inv.backup_names[chosen.base_backup.id]
    tar_path = wal_dir / "base.tar"
    fetched: list[str] = []
    try:
        wal_archive.fetch(store, base_name, inv.checksums[base_name], tar_path)
        with tarfile.open(tar_path) as archive:
            archive.extractall(data_dir, filter="data")
        tar_path.unlink()
        for seg in _segments_for(inv, chosen):
            name = segment_name(seg.timeline, seg.segno, segment_size)
            wal_archive.fetch(store, inv.object_of(seg), seg.sha256, wal_dir / name)
            fetched.append(name)
    except CorruptObject as exc:
        raise RestoreRefused(f"refusing to restore from a corrupt archive: {exc}") from exc
    except NotFound as exc:
        raise RestoreRefused(f"archive object missing: {exc}") from exc
    write_recovery_settings(data_dir, wal_dir, chosen)
    data_dir.chmod(0o700)  # PostgreSQL refuses a data directory others can read
    return PreparedRestore(chosen, data_dir, wal_dir, fetched)


RESTORE_MARKER = "tradesense-restore.json"
"""Written into the data directory last: its presence with the same stamp means the Job's work is done."""


def prepared_by(data_dir: Path) -> dict[str, str] | None:
    """The marker of the restore that prepared `data_dir` (None: not one of ours, or unfinished)."""
    try:
        found = json.loads((data_dir / RESTORE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def set_aside_path(data_dir: Path, stamp: str) -> Path:
    """Where this restore keeps the data directory it replaces (same volume: a rename, no copy)."""
    return data_dir.with_name(f"{data_dir.name}.before-restore-{hashlib.sha256(stamp.encode()).hexdigest()[:10]}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_target_in_place(data_dir: Path, wal_dir: Path, stamp: str) -> bool:
    """After PostgreSQL stopped with TARGET_NOT_REACHED: replay all fetched WAL instead (see `recover`).

    Only on a directory this restore (`stamp`) prepared; False when it already was rewritten. RestoreRefused
    for any other directory.
    """
    marker = prepared_by(data_dir)
    if marker is None or marker.get("stamp") != stamp:
        raise RestoreRefused(f"{data_dir} was not prepared by the restore {stamp}; not changing its settings")
    if marker.get("untargeted"):
        return False
    write_recovery_settings(data_dir, wal_dir, None)
    (data_dir / RESTORE_MARKER).write_text(json.dumps({**marker, "untargeted": True}, sort_keys=True))
    return True


def prepare_in_place(
    store: BackupStore, chosen: RestorePlan, inv: Inventory, *, data_dir: Path, wal_dir: Path, stamp: str,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> PreparedRestore:
    """Replace the (stopped) database's data directory with the base backup + WAL of `chosen`; crash-safe.

    The current directory is renamed aside first (`set_aside_path`): it is the physical safety copy, and
    its existence tells a re-run after a crash that `data_dir` holds only this restore's partial work,
    which is removed and redone. The marker is written last; callers check `prepared_by` before planning.
    """
    aside = set_aside_path(data_dir, stamp)
    if aside.exists():
        shutil.rmtree(data_dir, ignore_errors=True)  # our own half-prepared directory
    elif data_dir.exists() and any(data_dir.iterdir()):
        data_dir.rename(aside)
        _fsync_dir(data_dir.parent)
        log.info("moved the current data directory aside to %s", aside)
    shutil.rmtree(wal_dir, ignore_errors=True)
    prepared = prepare_data_directory(store, chosen, inv, data_dir=data_dir, wal_dir=wal_dir,
                                      segment_size=segment_size)
    marker = data_dir / RESTORE_MARKER
    marker.write_text(json.dumps({"stamp": stamp, "plan": chosen.describe(),
                                  "setAside": str(aside) if aside.exists() else ""}, sort_keys=True))
    with marker.open("rb+") as handle:
        os.fsync(handle.fileno())
    _fsync_dir(data_dir)
    return prepared


def write_recovery_settings(data_dir: Path, wal_dir: Path, chosen: RestorePlan | None, *,
                            with_target: bool = True) -> None:
    """Append restore_command and the target to postgresql.auto.conf (replacing an earlier block); recovery.signal.

    `chosen` None (or with_target False): replay every fetched segment, then promote.
    """
    conf = data_dir / "postgresql.auto.conf"
    text = conf.read_text() if conf.exists() else ""
    text = text.split(SETTINGS_MARK)[0]
    lines = [SETTINGS_MARK, f"restore_command = 'cp \"{wal_dir}/%f\" \"%p\"'", "recovery_target_action = 'promote'"]
    if with_target and chosen is not None and chosen.target_time is not None:
        lines.append(f"recovery_target_time = '{chosen.target_time.isoformat()}'")
    if with_target and chosen is not None and chosen.target_lsn is not None:
        lines.append(f"recovery_target_lsn = '{chosen.target_lsn}'")
    conf.write_text(text + "\n".join(lines) + "\n")
    (data_dir / "recovery.signal").write_text("")


SCRATCH_HBA = "# scratch instance of a test or point-in-time restore: Unix socket only\nlocal all all trust\n"


def recover(
    prepared: PreparedRestore, workdir: Path, *, run_as: str | None, timeout: float = 600.0, scratch: bool = True,
    user: str = "postgres",
) -> LocalServer:
    """Start the server on the prepared directory and wait until it has promoted; returns the running server.

    A `scratch` instance (verification, materialising a point in time) gets a pg_hba.conf admitting
    local socket connections only: the source's rules may demand passwords the operator does not hold,
    and the socket directory is private, so nothing else on the node can reach the copy.
    """
    if scratch:
        (prepared.data_dir / "pg_hba.conf").write_text(SCRATCH_HBA)
    if run_as:
        chown_tree(prepared.data_dir, run_as)
        chown_tree(prepared.wal_dir, run_as)
        chown_tree(workdir, run_as)
    server = LocalServer(prepared.data_dir, workdir, run_as=run_as)
    server.start()
    try:
        server.wait_recovered(timeout=timeout, user=user)
    except RecoveryFailed as exc:
        if TARGET_NOT_REACHED not in exc.log_tail or prepared.plan.latest:
            raise
        log.info("no commit after the target was archived; replaying all fetched WAL (all of it precedes the target)")
        write_recovery_settings(prepared.data_dir, prepared.wal_dir, prepared.plan, with_target=False)
        server = LocalServer(prepared.data_dir, workdir, run_as=run_as, port=server.port)
        server.start()
        server.wait_recovered(timeout=timeout, user=user)
    return server


def table_counts(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Row counts of every user table: proves a restored database opens and reads every table."""
    tables = conn.execute("SELECT schemaname, relname FROM pg_stat_user_tables").fetchall()
    counts: dict[str, int] = {}
    for schema_name, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(str(schema_name)),
                                                               sql.Identifier(str(table)))
        row = conn.execute(query).fetchone()
        counts[f"{schema_name}.{table}"] = int(str(row[0])) if row is not None else 0
    return counts


def verify(server: LocalServer, dbname: str, user: str = "postgres") -> dict[str, int]:
    """Row counts of every user table of the scratch instance."""
    with psycopg.connect(server.dsn(dbname, user), connect_timeout=5) as conn:
        return table_counts(conn)


@dataclass(frozen=True)
class TrialRestoreResult:
    """Outcome of the scheduled test restore of the newest base backup plus all WAL."""

    ok: bool
    detail: str
    plan: RestorePlan | None = None
    table_counts: dict[str, int] | None = None


def trial_restore_latest(
    store: BackupStore, label: str, *, now: datetime, workdir: Path, dbname: str, run_as: str | None,
    timeout: float = 600.0,
) -> TrialRestoreResult:
    """Prove the window: restore 'latest' into a throwaway instance under `workdir`, count rows, stop it."""
    try:
        chosen, inv = plan(store, label, now=now)
        prepared = prepare_data_directory(store, chosen, inv, data_dir=workdir / "data", wal_dir=workdir / "wal")
        server = recover(prepared, workdir, run_as=run_as, timeout=timeout)
    except (RestoreRefused, ClientError) as exc:
        return TrialRestoreResult(False, str(exc))
    try:
        counts = verify(server, dbname)
    except psycopg.Error as exc:
        return TrialRestoreResult(False, f"restored instance does not answer: {type(exc).__name__}", chosen)
    finally:
        server.stop()
    return TrialRestoreResult(True, chosen.describe(), chosen, counts)
