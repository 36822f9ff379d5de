"""Point-in-time recovery benchmark: archiver throughput and lag under a pgbench write load, and the time
to restore a point in time against restoring the nightly dump of the same database.

One run, one throwaway PostgreSQL 15 (the shared server is never reconfigured):

  load     `pgbench -i -s SCALE`, a base backup, then `pgbench -c 4 -T SECONDS` (TPC-B-like writes) while
           the archiver passes every `--interval` seconds (the operator's daemon uses 5 s); per pass:
           lag bytes (server WAL position − archived position) and lag seconds (now − newest moment
           fully archived, the RPO). Printed: WAL generated vs archived (MB/s) and their ratio, lag p50/p99/max.
  restore  baseline: the nightly logical dump (operator dump pipeline) restored with the runbook's restore
           (drop, create, load, ANALYZE) into the throwaway server; PITR: base backup + all WAL replayed
           to "latest" into a fresh data directory and promoted. Printed: both times and their ratio.

Run: `.venv/bin/python bench/pitr.py [--scale 20] [--seconds 30] [--interval 1]` (an extra, not a test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tradesense_operator.clients.pgdump import PgTarget, tool_path
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import dump_pipeline, pitr_restore
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.backups.restore import restore_database_sync
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

RUN_AS = "postgres" if os.geteuid() == 0 else None


def pgbench(server: ThrowawayPostgres, *args: str) -> None:
    subprocess.run([tool_path("pgbench"), "-h", server.host, "-p", str(server.port), "-U", server.user,
                    *args, "bench"], check=True, capture_output=True, timeout=3600)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale (~15 MB per unit)")
    parser.add_argument("--seconds", type=int, default=30, help="duration of the write load")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between archiver passes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-pitr-"))
    server = ThrowawayPostgres(settings={"max_wal_size": "1GB"}).start()
    try:
        server.create_database("bench")
        pgbench(server, "-i", "-q", "-s", str(args.scale))
        store = FilesystemStore(work / "store")
        target = PgTarget(host=server.host, port=server.port, dbname="bench", user=server.user)
        archiver = WalArchiver(target=target, store=store, label="bench", staging=work / "staging",
                               slot="bench_archiver", clock=SystemClock())
        archiver.tick()
        take_base_backup(target, store, "bench", staging=work / "bb", clock=SystemClock())
        archived = measure_load(server, archiver, args)
        archiver.stop()
        measure_restore(store, target, archived)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


def measure_load(server: ThrowawayPostgres, archiver: WalArchiver, args: argparse.Namespace) -> float:
    """Run pgbench while the archiver passes; print throughput and lag; returns MB archived."""
    first = archiver.tick()
    if first.server_lsn is None or first.archived_lsn is None:
        raise SystemExit("the archiver has no positions yet")
    start_server, start_archived = first.server_lsn, first.archived_lsn
    load = threading.Thread(target=pgbench, args=(server, "-c", "4", "-j", "2", "-T", str(args.seconds)))
    began = time.monotonic()
    load.start()
    lag_s: list[float] = []
    lag_b: list[float] = []
    while load.is_alive():
        report = archiver.tick()
        if report.health.lag_seconds is not None:
            lag_s.append(report.health.lag_seconds)
        if report.health.lag_bytes is not None:
            lag_b.append(report.health.lag_bytes)
        time.sleep(args.interval)
    elapsed = time.monotonic() - began
    last = archiver.tick()
    if last.server_lsn is None or last.archived_lsn is None:
        raise SystemExit("the archiver lost its positions")
    generated = (last.server_lsn - start_server) / 1e6
    archived = (last.archived_lsn - start_archived) / 1e6
    print(f"load: pgbench scale {args.scale}, 4 clients, {elapsed:.1f}s; archiver pass every {args.interval:g}s")
    print(f"  WAL generated {generated:.1f} MB ({generated / elapsed:.2f} MB/s), "
          f"archived {archived:.1f} MB ({archived / elapsed:.2f} MB/s), ratio {archived / generated:.3f}")
    print(f"  lag seconds p50 {statistics.median(lag_s):.2f}  p99 {pct(lag_s, 0.99):.2f}  max {max(lag_s):.2f}"
          f"  ({len(lag_s)} passes)")
    print(f"  lag MB      p50 {statistics.median(lag_b) / 1e6:.2f}  p99 {pct(lag_b, 0.99) / 1e6:.2f}  "
          f"max {max(lag_b) / 1e6:.2f}")
    return archived


def measure_restore(store: FilesystemStore, target: PgTarget, archived: float) -> None:
    """Restore the nightly dump (runbook restore) and the latest point in time; print both and the ratio."""
    nightly = dump_pipeline.run_backup(store, BackupRequest(target, "nightly"), clock=SystemClock())
    t0 = time.monotonic()
    restore_database_sync(store, target, nightly, stamp="bench", safety_backup_id="bench")
    dump_restore = time.monotonic() - t0
    t0 = time.monotonic()
    restore_dir = Path(tempfile.mkdtemp(prefix="bench-pitr-restore-"))
    try:
        result = pitr_restore.trial_restore_latest(store, "bench", now=datetime.now(UTC), workdir=restore_dir,
                                                   dbname="bench", run_as=RUN_AS, timeout=3600)
    finally:
        shutil.rmtree(restore_dir, ignore_errors=True)
    pitr_time = time.monotonic() - t0
    if not result.ok:
        raise SystemExit(f"point-in-time restore failed: {result.detail}")
    print(f"restore: nightly dump ({nightly.bytes / 1e6:.1f} MB gz) {dump_restore:.1f}s; "
          f"point in time (base + {archived:.0f} MB WAL, to latest) {pitr_time:.1f}s; "
          f"ratio pitr/dump {pitr_time / dump_restore:.2f}")


if __name__ == "__main__":
    main()
