"""`tradesense-operator backup run|verify|list|restore`: the BackupPolicy engine for humans and Jobs.

The same functions the operator runs inline, so a Job (`executor: job`) or an engineer at a terminal
gets identical files, manifests, checksums and verification. Passwords come from PGPASSWORD or
--password-file (never a flag value: argv is visible to every user of the node); S3 keys from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.cli import pitr as pitr_cli
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore, FilesystemStore, S3Location, S3Store
from tradesense_operator.domain.backups.durations import parse_duration
from tradesense_operator.domain.backups.formats import effective_level
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.backups.naming import validate_label
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import dump_pipeline, restore
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.retention import apply_retention


class UsageError(Exception):
    """Bad input; exit status 2 with the message."""


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database")
    group.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"), help="server host (PGHOST)")
    group.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")), help="server port (PGPORT)")
    group.add_argument("--user", default=os.environ.get("PGUSER", "tradesense"), help="role (PGUSER)")
    group.add_argument("--dbname", default=os.environ.get("PGDATABASE", "tradesense"), help="database (PGDATABASE)")
    group.add_argument("--sslmode", default=os.environ.get("PGSSLMODE", "prefer"), help="libpq sslmode")
    group.add_argument("--password-file", type=Path, help="file holding the password (else PGPASSWORD)")


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("storage (exactly one of --storage-path or --s3-bucket)")
    group.add_argument("--storage-path", type=Path, help="backup directory")
    group.add_argument("--s3-bucket", help="S3 bucket (keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    group.add_argument("--s3-prefix", default="", help="key prefix")
    group.add_argument("--s3-endpoint", help="endpoint URL for S3-compatible services")
    group.add_argument("--s3-region", default="us-east-1", help="region")


def _one_backup_flags(parser: argparse.ArgumentParser, *, default: str) -> None:
    """A command on one stored backup of a database: where it is, and which (`--id`, else `default` of --label)."""
    _connection_flags(parser)
    _storage_flags(parser)
    parser.add_argument("--id", help=f"backup id (default: {default} of --label)")
    parser.add_argument("--label", help="only backups with this label")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup` and its sub-commands."""
    parser = subparsers.add_parser("backup", help="run, verify, list and restore PostgreSQL backups")
    commands = parser.add_subparsers(dest="backup_command", required=True)

    run = commands.add_parser("run", help="dump, compress, checksum, store, verify (and apply retention)")
    _connection_flags(run)
    _storage_flags(run)
    run.add_argument("--format", choices=[f.value for f in BackupFormat], default=BackupFormat.PLAIN_GZIP.value)
    run.add_argument("--compression-level", type=int, default=None, choices=range(20), metavar="LEVEL",
                     help="0-9 for gzip formats, 1-19 for plain-zstd and binary (default: the format's)")
    run.add_argument("--jobs", type=int, default=None,
                     help="compression threads / pg_dump -j (directory) / dump+load sessions (binary); default: CPUs, max 8")
    run.add_argument("--label", help="file-name prefix and policy label (default: the database name)")
    run.add_argument("--verify-integrity", action=argparse.BooleanOptionalAction, default=True,
                     help="re-read, decompress and checksum after writing (default on)")
    run.add_argument("--test-restore", action="store_true", help="restore into a scratch database and compare rows")
    run.add_argument("--keep-last", type=int, help="retention: keep this many newest backups of the label")
    run.add_argument("--max-age", help="retention: delete backups older than this (e.g. 30d)")
    run.set_defaults(func=_run)

    verify = commands.add_parser("verify", help="check a stored backup (default: the newest)")
    _one_backup_flags(verify, default="newest")
    verify.add_argument("--test-restore", action="store_true", help="also restore into a scratch database")
    verify.set_defaults(func=_verify)

    listing = commands.add_parser("list", help="complete backups, newest first")
    _storage_flags(listing)
    listing.add_argument("--label", help="only backups with this label")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    rest = commands.add_parser("restore", help="replace the database with a verified backup (destructive)")
    _one_backup_flags(rest, default="newest verified")
    rest.add_argument("--stamp", help="idempotency stamp; re-running with the same stamp resumes")
    rest.add_argument("--yes", action="store_true", help="confirm dropping and recreating the database")
    rest.add_argument("--jobs", type=int, default=None,
                      help="pg_restore -j for directory backups (default: CPUs, at most 8)")
    pitr_cli.add_restore_flags(rest)
    rest.set_defaults(func=_restore)


# -- input --------------------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        try:
            return str(args.password_file.read_text()).rstrip("\n")
        except OSError as exc:
            raise UsageError(f"--password-file: cannot read {args.password_file}: {exc.strerror}") from exc
    return os.environ.get("PGPASSWORD")


def _target(args: argparse.Namespace) -> PgTarget:
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a TCP port")
    return PgTarget(host=args.host, port=args.port, user=args.user, dbname=args.dbname, password=_password(args),
                    sslmode=args.sslmode)


def _store(args: argparse.Namespace) -> BackupStore:
    if (args.storage_path is None) == (args.s3_bucket is None):
        raise UsageError("storage: give exactly one of --storage-path or --s3-bucket")
    if args.storage_path is not None:
        if not args.storage_path.is_absolute():
            args.storage_path = args.storage_path.resolve()
        return FilesystemStore(args.storage_path)
    return S3Store(S3Location(
        bucket=args.s3_bucket, prefix=args.s3_prefix, endpoint=args.s3_endpoint, region=args.s3_region,
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"), secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
    ))


def _jobs(args: argparse.Namespace) -> int | None:
    if args.jobs is not None and not 1 <= args.jobs <= 64:
        raise UsageError(f"--jobs: {args.jobs} is not between 1 and 64")
    return int(args.jobs) if args.jobs is not None else None


def _label(args: argparse.Namespace) -> str:
    try:
        return validate_label(args.label or args.dbname.lower())
    except ValueError as exc:
        raise UsageError(f"--label: {args.label or args.dbname!r} cannot name backup files (lower-case letters, "
                         "digits, '.', '_', '-')") from exc


def _summary(manifest: BackupManifest, store: BackupStore) -> dict[str, object]:
    return {
        "id": manifest.id, "label": manifest.label, "database": manifest.database, "format": manifest.format.value,
        "kind": manifest.kind, "startedAt": manifest.started_at.isoformat(),
        "finishedAt": manifest.finished_at.isoformat(), "bytes": manifest.bytes, "rawBytes": manifest.raw_bytes,
        "sha256": manifest.sha256, "durationSeconds": manifest.duration_seconds, "verified": manifest.verified,
        "verification": manifest.verification.detail if manifest.verification else None,
        "location": store.location(manifest.file_name),
    }


# -- commands -----------------------------------------------------------------------------------


def _handle(action: str, run: Callable[[], int]) -> int:
    """Run a command body, mapping errors to exit codes and one-line messages (no tracebacks, no secrets)."""
    try:
        return run()
    except (UsageError, pitr_cli.PitrUsageError) as exc:
        print(f"tradesense-operator backup {action}: {exc}", file=sys.stderr)
        return 2
    except (BackupFailed, RestoreRefused, dump_pipeline.IntegrityError, ClientError, ValueError) as exc:
        print(f"tradesense-operator backup {action}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    def body() -> int:
        target, store = _target(args), _store(args)
        label = _label(args)
        try:
            max_age = parse_duration(args.max_age, field="--max-age") if args.max_age else None
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if args.keep_last is not None and args.keep_last < 1:
            raise UsageError("--keep-last: must be at least 1")
        fmt = BackupFormat(args.format)
        try:
            effective_level(fmt, args.compression_level)
        except ValueError as exc:
            raise UsageError(f"--compression-level: {exc}") from exc
        jobs = _jobs(args)
        clock = SystemClock()
        manifest = dump_pipeline.run_verified_backup(
            store, BackupRequest(target, label, fmt, args.compression_level, record_counts=args.test_restore),
            clock=clock, workers=jobs, integrity=args.verify_integrity,
            test_restore_source=target if args.test_restore else None)
        print(json.dumps(_summary(manifest, store), indent=1))
        if manifest.verification is not None and not manifest.verified:
            print(f"verification failed: {manifest.verification.detail}", file=sys.stderr)
            return 1
        if args.keep_last is not None or max_age is not None:
            for decision in apply_retention(store, label, now=clock.now(), keep_last=args.keep_last, max_age=max_age):
                print(f"deleted {decision.id}: {decision.reason}", file=sys.stderr)
        return 0

    return _handle("run", body)


def _pick(store: BackupStore, backup_id: str | None, label: str | None) -> BackupManifest:
    if backup_id:
        return dump_pipeline.find_backup(store, backup_id)
    backups = dump_pipeline.list_backups(store, label=label)
    if not backups:
        raise UsageError("no complete backup found" + (f" with label {label}" if label else ""))
    return backups[0]


def _verify(args: argparse.Namespace) -> int:
    def body() -> int:
        store = _store(args)
        target = _target(args) if args.test_restore else None
        manifest = _pick(store, args.id, args.label)
        checked = dump_pipeline.verify_backup(store, manifest, clock=SystemClock(), test_restore_source=target)
        print(json.dumps(_summary(checked, store), indent=1))
        return 0 if checked.verified else 1

    return _handle("verify", body)


def _list(args: argparse.Namespace) -> int:
    def body() -> int:
        store = _store(args)
        backups = dump_pipeline.list_backups(store, label=args.label)
        point_in_time = pitr_cli.list_entries(store, args.label)
        if args.json:
            print(json.dumps([_summary(m, store) for m in backups] + point_in_time, indent=1))
            return 0
        print(f"{'ID':40} {'FINISHED (UTC)':20} {'FORMAT':11} {'SIZE':>12} {'VERIFIED':8} KIND")
        for m in backups:
            finished = m.finished_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{m.id:40} {finished:20} {m.format.value:11} {m.bytes:>12} {'yes' if m.verified else 'no':8} "
                  f"{m.kind}")
        for row in point_in_time:
            if row["kind"] == "base":
                finished_at = str(row["finishedAt"])[:19].replace("T", " ")
                print(f"{row['id']:40} {finished_at:20} {'basebackup':11} {'':>12} {'':8} base")
            else:
                print(f"{row['id']:40} {'window':20} {'wal':11} {row['earliest']} .. {row['latest']} "
                      f"({row['segments']} segments, gaps: {', '.join(row['gaps']) or 'none'})")  # type: ignore[arg-type]
        return 0

    return _handle("list", body)


def _restore(args: argparse.Namespace) -> int:
    def body() -> int:
        if pitr_cli.wants_point_in_time(args):
            return pitr_cli.restore_point(args, _store(args))
        if not args.yes:
            raise UsageError(f"--yes: restoring drops and recreates database {args.dbname}; confirm with --yes")
        store, target = _store(args), _target(args)
        label = args.label
        manifest = restore.find_clean_backup_sync(store, label=label, backup_id=args.id,
                                                  database=None if args.id else args.dbname)
        stamp = args.stamp or f"cli-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        safety = restore.take_safety_backup_sync(store, target, stamp=stamp, label=_label(args), clock=SystemClock())
        if safety is not None:
            print(f"safety backup {safety.id} at {store.location(safety.file_name)}", file=sys.stderr)
        report = restore.restore_database_sync(store, target, manifest, stamp=stamp,
                                               safety_backup_id=safety.id if safety else None, workers=_jobs(args))
        print(json.dumps({"restored": report.backup_id, "database": report.database,
                          "alreadyDone": report.already_done, "tables": report.table_counts}, indent=1))
        return 0

    return _handle("restore", body)
