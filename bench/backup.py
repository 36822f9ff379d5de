"""Backup benchmark: the operator's backup against the runbook's raw `pg_dump | gzip > file`, same database.

One run, one generated database of the runbook schema (default ~300 MB on disk, loaded with COPY by the
sandbox's generator), on the shared PostgreSQL (a uniquely named database, dropped at the end):

  raw      `pg_dump -d DB | gzip -6 > backup.sql.gz` through /bin/sh — the runbook's manual backup
  operator dump_pipeline.run_backup (plain-gzip, level 6): pg_dump → parallel gzip members on a thread pool
           (zlib releases the GIL; pigz-style) → sha256 in the same pass → temp file → fsync → rename →
           manifest; then dump_pipeline.check_integrity (re-read, decompress, re-checksum, size and trailer check)

Each is run `--rounds` times alternately (the page cache is warm for both after the first); the best
round counts. Printed: dump throughput (MB of SQL per second) of each, the ratio operator/raw for the
backup alone and for backup + integrity verification, and restore times (runbook `gunzip -c | psql`
vs the operator's checked, single-transaction restore). Goal: ratio ≥ 0.95 while also checksumming and
verifying.

Run: `.venv/bin/python bench/backup.py [--size-mb 300] [--rounds 2] [--workers N]`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_sandbox import schema

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
MB = 1024 * 1024


@dataclass
class Timing:
    seconds: float
    raw_bytes: int
    stored_bytes: int

    @property
    def throughput(self) -> float:
        return self.raw_bytes / MB / self.seconds


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True)


def create_database(size_mb: float) -> PgTarget:
    name = f"tso_bench_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = PgTarget(host=HOST, port=PORT, user=USER, dbname=name)
    started = time.monotonic()
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=name, autocommit=True) as conn:
        schema.load_schema(conn)
        schema.populate(conn, users=20_000, trades=schema.trades_for_size(size_mb), seed=7)
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    size = int(str(row[0])) if row else 0
    print(f"generated {name}: {size / MB:.0f} MB on disk in {time.monotonic() - started:.1f}s")
    return target


def raw_backup(target: PgTarget, out: Path) -> Timing:
    started = time.monotonic()
    subprocess.run(f"pg_dump --no-password -d {target.dbname} | gzip -6 > {out}", shell=True, check=True,
                   env=target.env())
    seconds = time.monotonic() - started
    raw = int(subprocess.run(f"gzip -dc {out} | wc -c", shell=True, check=True, capture_output=True,
                             text=True).stdout.strip())
    return Timing(seconds, raw, out.stat().st_size)


def operator_backup(target: PgTarget, store: FilesystemStore, workers: int | None) -> tuple[Timing, Timing, str]:
    clock = SystemClock()
    started = time.monotonic()
    manifest = dump_pipeline.run_backup(store, BackupRequest(target, "bench", compression_level=6), clock=clock,
                                 workers=workers)
    backup_seconds = time.monotonic() - started
    dump_pipeline.check_integrity(store, manifest)
    total = time.monotonic() - started
    return (Timing(backup_seconds, manifest.raw_bytes, manifest.bytes),
            Timing(total, manifest.raw_bytes, manifest.bytes), manifest.id)


def timed_restore_raw(target: PgTarget, dump: Path) -> float:
    name = target.dbname + "_rraw"
    pgdump.create_database(target, name)
    started = time.monotonic()
    subprocess.run(f"gunzip -c {dump} | psql -q -X -v ON_ERROR_STOP=1 -d {name} >/dev/null", shell=True, check=True,
                   env=target.env())
    seconds = time.monotonic() - started
    pgdump.drop_database(target, name)
    return seconds


def timed_restore_operator(target: PgTarget, store: FilesystemStore, backup_id: str) -> float:
    name = target.dbname + "_rop"
    copy = target.with_db(name)
    pgdump.create_database(target, name)
    started = time.monotonic()
    dump_pipeline.restore_into(copy, store, dump_pipeline.find_backup(store, backup_id))
    seconds = time.monotonic() - started
    pgdump.drop_database(target, name)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300.0, help="approximate database size to generate")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each pipeline (best counts)")
    parser.add_argument("--workers", type=int, default=None, help="compression threads (default: CPU count)")
    args = parser.parse_args()
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {version}")
    target = create_database(args.size_mb)
    try:
        with tempfile.TemporaryDirectory(prefix="tso-bench-") as tmp:
            directory = Path(tmp)
            raws: list[Timing] = []
            backups: list[Timing] = []
            verified: list[Timing] = []
            ids: list[str] = []
            for round_ in range(args.rounds):
                raw_file = directory / f"raw_{round_}.sql.gz"
                raws.append(raw_backup(target, raw_file))
                store = FilesystemStore(directory / f"op_{round_}")
                backup, total, id_ = operator_backup(target, store, args.workers)
                backups.append(backup)
                verified.append(total)
                ids.append(id_)
                print(f"round {round_ + 1}: raw {raws[-1].seconds:.2f}s  operator {backup.seconds:.2f}s "
                      f"(+verify {total.seconds:.2f}s)")
            raw = min(raws, key=lambda t: t.seconds)
            ours = min(backups, key=lambda t: t.seconds)
            ours_verified = min(verified, key=lambda t: t.seconds)
            best_round = verified.index(ours_verified)
            print()
            print(f"dump size: {raw.raw_bytes / MB:.0f} MB of SQL; gzip {raw.stored_bytes / MB:.1f} MB (raw), "
                  f"{ours.stored_bytes / MB:.1f} MB (operator)")
            print(f"raw pipeline  pg_dump | gzip > file : {raw.seconds:7.2f}s  {raw.throughput:7.1f} MB/s")
            print(f"operator backup (sha256, fsync)     : {ours.seconds:7.2f}s  {ours.throughput:7.1f} MB/s"
                  f"  ratio {raw.seconds / ours.seconds:.2f}x")
            print(f"operator backup + integrity verify  : {ours_verified.seconds:7.2f}s  "
                  f"{ours_verified.throughput:7.1f} MB/s  ratio {raw.seconds / ours_verified.seconds:.2f}x")
            raw_restore = timed_restore_raw(target, directory / "raw_0.sql.gz")
            op_restore = timed_restore_operator(target, FilesystemStore(directory / f"op_{best_round}"),
                                                ids[best_round])
            print(f"restore, runbook gunzip -c | psql   : {raw_restore:7.2f}s")
            print(f"restore, operator (checked, 1 txn)  : {op_restore:7.2f}s")
            goal = raw.seconds / ours_verified.seconds >= 0.95
            print(f"goal (backup + verify >= 0.95x raw): {'met' if goal else 'NOT met'}")
    finally:
        with admin() as conn:
            for suffix in ("", "_rraw", "_rop"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(target.dbname + suffix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
