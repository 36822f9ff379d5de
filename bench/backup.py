"""Backup benchmark: every BackupPolicy format against `pg_dump > /dev/null` (the limit) and the runbook, same database.

One run, one generated database of the runbook schema (default ~100 MB on disk, `--size-mb 1024` or
TSO_BENCH_SIZE_MB=1024 for 1 GB), loaded with COPY by the sandbox's generator on the shared PostgreSQL
(a uniquely named database, dropped at the end). Measured in `--rounds` rounds, every run paired with its
baseline run just before it (so a load spike on a shared machine hits both; ratios are medians of pairs):

  limit    `pg_dump -d DB > /dev/null`: the dump itself, nothing stored — no backup can be faster
  runbook  `pg_dump -d DB | gzip -6 > backup.sql.gz` through /bin/sh — the runbook's manual backup
  formats  dump_pipeline.run_verified_backup(integrity=True) — what a policy with verify.integrity does:
           sha256 in the same pass, the content decompressed and checked on its own thread while it is
           written, temp file, fsync, rename, the stored bytes re-read for their sha256, one manifest —
           for plain-gzip, custom, plain-zstd, directory and binary, at their default levels

Restores (into a fresh database each time): the runbook's `gunzip -c backup.sql.gz | psql` against
dump_pipeline.restore_into of each format (checksums checked before or while restoring). Every restored
database's per-table row counts are compared with the source's (outside the timing): a wrong restore stops
the benchmark.

Printed per format: best backup+verify time, the CPU seconds of this process and its children (pg_dump,
psql, pg_restore; not the server's backends) during that run, with the limit beside it and the ratio
limit/time (1.0 = as fast as the dump alone; goal >= 0.9 for the fastest format), MB of SQL per second,
the stored size and the compression ratio (plain SQL bytes / stored bytes, the same yardstick for every
format), and the restore time (and its client CPU) with its ratio to the runbook's restore (goal <= 0.5
for the fastest).

Run: `.venv/bin/python bench/backup.py [--size-mb 100] [--rounds 3] [--workers N] [--formats a,b]`.
Duration on the 2-core development VM at load average 7-12 (other test suites running): 7 minutes at
100 MB (3 rounds); 26 minutes at 1 GB with `--rounds 1` (4.6 of them generating the data, 3 for each
gzip-6 backup), ~4 GB of disk at peak (the source, one restored copy, one backup per format). Skip the
slow gzip formats with `--formats plain-zstd,directory,binary` (the runbook pipeline is always measured).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_sandbox import schema

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
MB = 1024 * 1024


@dataclass
class Result:
    """One pipeline's rounds, each paired with its baseline measured just before it (same load)."""

    name: str
    backups: list[tuple[float, float]] = field(default_factory=list)  # (limit, backup+verify)
    backup_cpu: dict[float, float] = field(default_factory=dict)  # backup seconds -> client CPU seconds of that run
    restore_cpu: dict[float, float] = field(default_factory=dict)
    restores: list[tuple[float, float]] = field(default_factory=list)  # (runbook restore, restore)
    stored_bytes: int = 0

    @property
    def seconds(self) -> float:
        return min(t for _, t in self.backups)

    @property
    def limit(self) -> float:
        """The limit measured next to the best backup."""
        return min(self.backups, key=lambda pair: pair[1])[0]

    @property
    def backup_ratio(self) -> float:
        """Median over rounds of limit / backup time (paired, so a load spike hits both)."""
        return statistics.median(lim / t for lim, t in self.backups)

    @property
    def restore_seconds(self) -> float:
        return min(t for _, t in self.restores)

    @property
    def restore_base(self) -> float:
        """The runbook restore measured just before the best restore (its pair; `x runbook` is the median of pairs)."""
        return min(self.restores, key=lambda pair: pair[1])[0]

    @property
    def best_backup_cpu(self) -> float:
        """Client CPU seconds of the best backup run."""
        return self.backup_cpu.get(self.seconds, float("nan"))

    @property
    def best_restore_cpu(self) -> float:
        """Client CPU seconds of the best restore run."""
        return self.restore_cpu.get(self.restore_seconds, float("nan"))

    @property
    def restore_ratio(self) -> float:
        """Median over rounds of restore time / runbook restore time."""
        return statistics.median(t / base for base, t in self.restores)


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


def client_cpu() -> float:
    """CPU seconds of this process and its finished children (the server's backends are not counted)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def shell(command: str, target: PgTarget) -> float:
    started = time.monotonic()
    subprocess.run(command, shell=True, check=True, env=target.env())
    return time.monotonic() - started


def limit_dump(target: PgTarget) -> float:
    return shell(f"pg_dump --no-password -d {target.dbname} > /dev/null", target)


def runbook_backup(target: PgTarget, out: Path) -> float:
    out.unlink(missing_ok=True)
    return shell(f"pg_dump --no-password -d {target.dbname} | gzip -6 > {out}", target)


def operator_backup(target: PgTarget, store: FilesystemStore, fmt: BackupFormat,
                    workers: int | None) -> tuple[float, BackupManifest]:
    clock = SystemClock()
    started = time.monotonic()
    manifest = dump_pipeline.run_verified_backup(store, BackupRequest(target, "bench", fmt), clock=clock,
                                                 integrity=True, workers=workers)
    seconds = time.monotonic() - started
    if not manifest.verified:
        raise SystemExit(f"{fmt.value}: the backup failed its verification: {manifest.verification}")
    return seconds, manifest


def timed_restore(target: PgTarget, restore: Callable[[PgTarget], object], expected: dict[str, int]) -> float:
    """Seconds to restore into a fresh database; SystemExit unless every table has the source's row count."""
    name = target.dbname + "_restore"
    pgdump.drop_database(target, name)
    pgdump.create_database(target, name)
    try:
        started = time.monotonic()
        restore(target.with_db(name))
        seconds = time.monotonic() - started
        restored = pgdump.table_counts(target.with_db(name))
        if restored != expected:
            raise SystemExit(f"restore into {name} gave row counts {restored}, the source has {expected}")
        return seconds
    finally:
        pgdump.drop_database(target, name)


def restorer(store: FilesystemStore, manifest: BackupManifest, workers: int | None) -> Callable[[PgTarget], None]:
    def restore(copy: PgTarget) -> None:
        dump_pipeline.restore_into(copy, store, manifest, workers=workers)

    return restore


def sql_size(dump: Path) -> int:
    out = subprocess.run(f"gzip -dc {dump} | wc -c", shell=True, check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def parse_formats(text: str) -> list[BackupFormat]:
    try:
        return [BackupFormat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise SystemExit(f"--formats: {exc}; choose from {', '.join(f.value for f in BackupFormat)}") from exc


def main() -> int:  # noqa: PLR0915  (one linear benchmark script)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=float(os.environ.get("TSO_BENCH_SIZE_MB", "100")),
                        help="approximate database size to generate (env TSO_BENCH_SIZE_MB; default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every pipeline (best counts)")
    parser.add_argument("--workers", type=int, default=None, help="threads / -j (default: CPUs, at most 8)")
    parser.add_argument("--formats", type=parse_formats, default=list(BackupFormat),
                        help="comma-separated formats (default: all)")
    args = parser.parse_args()
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machine: figures vary run to run); "
          f"{version}")
    began = time.monotonic()
    target = create_database(args.size_mb)
    expected = pgdump.table_counts(target)
    runbook = Result("runbook: pg_dump | gzip -6 > f")
    formats = {fmt: Result(fmt.value) for fmt in args.formats}
    kept: dict[BackupFormat, tuple[float, FilesystemStore, BackupManifest]] = {}
    limits: list[float] = []
    sql_bytes = 0
    try:
        with tempfile.TemporaryDirectory(prefix="tso-bench-") as tmp:
            directory = Path(tmp)
            raw_file = directory / "runbook.sql.gz"
            for round_ in range(args.rounds):
                limits.append(limit_dump(target))
                cpu = client_cpu()
                runbook.backups.append((limits[-1], runbook_backup(target, raw_file)))
                runbook.backup_cpu[runbook.backups[-1][1]] = client_cpu() - cpu
                line = [f"round {round_ + 1}: limit {limits[-1]:.2f}s runbook {runbook.backups[-1][1]:.2f}s"]
                for fmt, result in formats.items():
                    limits.append(limit_dump(target))
                    store = FilesystemStore(directory / f"{fmt.value}-{round_}")
                    cpu = client_cpu()
                    seconds, manifest = operator_backup(target, store, fmt, args.workers)
                    result.backup_cpu[seconds] = client_cpu() - cpu
                    result.backups.append((limits[-1], seconds))
                    result.stored_bytes = manifest.bytes
                    best = kept.get(fmt)
                    discard = best
                    if best is None or seconds < best[0]:  # keep the best backup of each format for the restores
                        kept[fmt] = (seconds, store, manifest)
                    else:
                        discard = (seconds, store, manifest)
                    if discard is not None:
                        discard[1].delete(discard[2].manifest_name)
                        discard[1].delete(discard[2].file_name)
                    line.append(f"limit {limits[-1]:.2f}s {fmt.value} {seconds:.2f}s")
                print("  ".join(line), flush=True)
            sql_bytes, runbook.stored_bytes = sql_size(raw_file), raw_file.stat().st_size

            def runbook_restore(copy: PgTarget) -> None:
                shell(f"gunzip -c {raw_file} | psql -q -X -v ON_ERROR_STOP=1 -d {copy.dbname} >/dev/null", copy)

            for round_ in range(args.rounds):
                line = [f"restore round {round_ + 1}:"]
                for fmt, result in formats.items():
                    cpu = client_cpu()
                    base = timed_restore(target, runbook_restore, expected)
                    runbook.restore_cpu[base] = client_cpu() - cpu
                    _, store, manifest = kept[fmt]
                    cpu = client_cpu()
                    seconds = timed_restore(target, restorer(store, manifest, args.workers), expected)
                    result.restore_cpu[seconds] = client_cpu() - cpu
                    result.restores.append((base, seconds))
                    runbook.restores.append((base, base))
                    line.append(f"runbook {base:.2f}s {fmt.value} {seconds:.2f}s")
                print("  ".join(line), flush=True)
    finally:
        with admin() as conn:
            for suffix in ("", "_restore"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(target.dbname + suffix)))
    report(min(limits), sql_bytes, runbook, list(formats.values()), args.rounds)
    print(f"\nbenchmark took {time.monotonic() - began:.0f}s; load average now {os.getloadavg()[0]:.1f}")
    return 0


def report(limit: float, sql_bytes: int, runbook: Result, formats: list[Result], rounds: int) -> None:
    print()
    print(f"{sql_bytes / MB:.0f} MB of SQL; {rounds} rounds; backup = dump + sha256 + store + integrity verification; "
          "restore into an empty database.")
    print("Each run is paired with its baseline measured just before it: 'limit' is the pg_dump > /dev/null next to")
    print("the best backup, 'x limit' the median over rounds of limit/backup; 'runbook' the runbook restore just")
    print("before the best restore, 'x runbook' the median over rounds of restore/runbook restore (so with one round")
    print("it is restore/runbook of the same row; the runbook's own row shows its best restore). Best-of times and")
    print("medians of paired ratios damp the shared machine's noise.")
    print("'cpu': CPU seconds of this process and its children (pg_dump, psql, ...) in that best run; the server's")
    print("backends are not counted.")
    header = (f"{'pipeline':32} {'backup':>8} {'cpu':>6} {'limit':>7} {'x limit':>8} {'MB/s':>7} {'stored MB':>10} "
              f"{'ratio':>6} {'restore':>8} {'cpu':>6} {'runbook':>8} {'x runbook':>10}")
    print(header)
    print("-" * len(header))
    print(f"{'limit: pg_dump > /dev/null':32} {limit:7.2f}s {'-':>6} {limit:6.2f}s {1.0:7.2f}x "
          f"{sql_bytes / MB / limit:7.1f} {'-':>10} {'-':>6} {'-':>8} {'-':>6} {'-':>8} {'-':>10}")
    for result in [runbook, *formats]:
        print(f"{result.name:32} {result.seconds:7.2f}s {result.best_backup_cpu:5.2f}s {result.limit:6.2f}s "
              f"{result.backup_ratio:7.2f}x {sql_bytes / MB / result.seconds:7.1f} {result.stored_bytes / MB:10.1f} "
              f"{sql_bytes / result.stored_bytes:6.2f} {result.restore_seconds:7.2f}s {result.best_restore_cpu:5.2f}s "
              f"{result.restore_base:7.2f}s {result.restore_ratio:9.2f}x")
    fastest_backup = max(formats, key=lambda r: r.backup_ratio)
    fastest_restore = min(formats, key=lambda r: r.restore_ratio)
    print()
    print(f"goal backup+verify >= 0.9x limit: {fastest_backup.name} {fastest_backup.backup_ratio:.2f}x "
          f"({'met' if fastest_backup.backup_ratio >= 0.9 else 'NOT met'})")
    print(f"goal restore <= 0.5x runbook:     {fastest_restore.name} {fastest_restore.restore_ratio:.2f}x "
          f"({'met' if fastest_restore.restore_ratio <= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
