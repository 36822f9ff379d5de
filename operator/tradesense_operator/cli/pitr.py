"""The point-in-time half of `tradesense-operator backup list|restore`.

`backup restore --target-time T | --target-lsn L | --latest --data-dir D` is the restore Job's entry
point: it plans (refusing gaps and targets outside the window), extracts the base backup into the
fresh data directory D, fetches and checksums the WAL range and writes the recovery settings; with
`--recover` it also starts PostgreSQL on D, waits for the promotion and prints row counts. `--dry-run`
prints the plan only: base backup, WAL range, expected data loss. `--in-place --stamp S` is the physical
restore Job's form: D is the stopped database's data directory, moved aside (not deleted) before the
restore; a re-run with the same S after the restore finished exits 0 without touching anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.pitr import RestorePlan
from tradesense_operator.domain.backups.wal import Lsn, WalError
from tradesense_operator.services.backups import pitr_restore, wal_archive


class PitrUsageError(ValueError):
    """Bad point-in-time flags."""


def add_restore_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("point in time (instead of a logical backup)")
    target = group.add_mutually_exclusive_group()
    target.add_argument("--target-time", help="restore to this moment (ISO 8601 with zone, e.g. 2024-01-16T14:03Z)")
    target.add_argument("--target-lsn", help="restore to this WAL position (e.g. 0/3000060)")
    target.add_argument("--latest", action="store_true", help="restore to the newest archived moment")
    target.add_argument("--without-target", action="store_true",
                        help="with --in-place: after PostgreSQL stopped with 'recovery ended before configured "
                             "recovery target was reached', replay all fetched WAL instead (no archived commit "
                             "follows the target, so that is the target's state)")
    group.add_argument("--data-dir", type=Path, help="fresh PostgreSQL data directory to restore into")
    group.add_argument("--wal-dir", type=Path, help="where fetched WAL is kept for replay (default: <data-dir>.wal)")
    group.add_argument("--dry-run", action="store_true", help="print the plan only")
    group.add_argument("--recover", action="store_true", help="start PostgreSQL on the data directory and replay")
    group.add_argument("--run-as", help="OS user PostgreSQL runs as (when invoked as root)")
    group.add_argument("--in-place", action="store_true",
                       help="--data-dir is the stopped database's own directory: move it aside, restore in its "
                            "place (needs --stamp; a re-run with the same stamp resumes or does nothing)")


def wants_point_in_time(args: argparse.Namespace) -> bool:
    return bool(args.target_time or args.target_lsn or args.latest or args.without_target)


def _plan_json(plan: RestorePlan) -> dict[str, object]:
    return {
        "baseBackup": plan.base_backup.id, "baseBackupFinishedAt": plan.base_backup.finished_at.isoformat(),
        "walSegments": [plan.first_segno, plan.last_segno],
        "target": (plan.target_time.isoformat() if plan.target_time else str(plan.target_lsn) if plan.target_lsn
                   else "latest"),
        "window": [plan.window.earliest.isoformat(), plan.window.latest.isoformat()],
        "changesLostAfter": plan.loss_after.isoformat(), "expectedLossSeconds": round(plan.loss_seconds, 1),
        "summary": plan.describe(),
    }


def restore_point(args: argparse.Namespace, store: BackupStore) -> int:
    """Plan, and unless --dry-run prepare (and with --recover replay) a point-in-time restore."""
    if args.without_target and not args.in_place:
        raise PitrUsageError("--without-target: only with --in-place (the scratch restore handles it itself)")
    if not args.label:
        raise PitrUsageError("--label: the policy's label is required for a point-in-time restore")
    try:
        target_time = datetime.fromisoformat(args.target_time.replace("Z", "+00:00")) if args.target_time else None
        target_lsn = Lsn.parse(args.target_lsn) if args.target_lsn else None
    except (ValueError, WalError) as exc:
        raise PitrUsageError(f"--target-time/--target-lsn: {exc}") from exc
    if args.in_place:
        if not args.stamp or args.data_dir is None or args.dry_run:
            raise PitrUsageError("--in-place: needs --stamp and --data-dir (and no --dry-run)")
        if args.without_target:
            data_dir = args.data_dir.resolve()
            wal_dir = (args.wal_dir or data_dir.with_name(data_dir.name + ".wal")).resolve()
            changed = pitr_restore.drop_target_in_place(data_dir, wal_dir, args.stamp)
            print(json.dumps({"dataDir": str(data_dir), "targetDropped": changed}, indent=1))
            return 0
        done = pitr_restore.prepared_by(args.data_dir.resolve())
        if done is not None and done.get("stamp") == args.stamp:
            print(json.dumps({"alreadyPrepared": done}, indent=1))
            return 0
    plan, inv = pitr_restore.plan(store, args.label, now=datetime.now(UTC), target_time=target_time,
                                  target_lsn=target_lsn)
    if args.dry_run:
        print(json.dumps({"plan": _plan_json(plan)}, indent=1))
        return 0
    if args.data_dir is None:
        raise PitrUsageError("--data-dir: required to restore (or use --dry-run)")
    if not args.yes:
        raise PitrUsageError(f"--yes: confirm restoring into {args.data_dir}")
    data_dir = args.data_dir.resolve()
    wal_dir = (args.wal_dir or data_dir.with_name(data_dir.name + ".wal")).resolve()
    if args.in_place:
        prepared = pitr_restore.prepare_in_place(store, plan, inv, data_dir=data_dir, wal_dir=wal_dir,
                                                 stamp=args.stamp)
    else:
        prepared = pitr_restore.prepare_data_directory(store, plan, inv, data_dir=data_dir, wal_dir=wal_dir)
    result: dict[str, object] = {"plan": _plan_json(plan), "dataDir": str(data_dir), "walFiles": len(prepared.segments)}
    if args.recover:
        server = pitr_restore.recover(prepared, data_dir.parent, run_as=args.run_as, scratch=False)
        try:
            result["tables"] = pitr_restore.verify(server, args.dbname)
        finally:
            server.stop()
    print(json.dumps(result, indent=1))
    print(f"restored {plan.describe()}", file=sys.stderr)
    return 0


def list_entries(store: BackupStore, label: str | None) -> list[dict[str, object]]:
    """Base backups and the WAL archive of `label` (every label when None) as listing rows."""
    labels = {label} if label else {o.name.split(".")[0] for o in store.list_objects()
                                    if o.name.endswith(wal_archive.META_SUFFIX)}
    rows: list[dict[str, object]] = []
    for name in sorted(labels):
        inv = wal_archive.list_inventory(store, name)
        for backup in inv.backups:
            rows.append({"id": backup.id, "kind": "base", "label": name, "finishedAt": backup.finished_at.isoformat(),
                         "startLsn": str(backup.start_lsn), "endLsn": str(backup.end_lsn)})
        if inv.segments:
            window = pitr.current_window(inv.backups, inv.segments)
            rows.append({"id": f"{name} WAL", "kind": "wal", "label": name, "segments": len(inv.segments),
                         "earliest": window.earliest.isoformat() if window else None,
                         "latest": window.latest.isoformat() if window else None,
                         "gaps": [g.describe() for g in pitr.find_gaps(inv.segments)]})
    return rows
