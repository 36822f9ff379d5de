"""Retention on real stored backups: by count, by age, the newest verified kept, leftovers swept.

Covers: keepLast deletes exactly the oldest beyond the count (manifest and data file); maxAge deletes
exactly those older than the limit; an unverified newest backup never costs the newest verified one;
a data file without a manifest (crash between rename and manifest) and temporary files are swept
once old, never while young; retention never touches another label's backups.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.backups.retention import apply_retention, sweep_leftovers


def make_backups(store: FilesystemStore, db: PgTarget, clock: ManualClock, verified: list[bool],
                 label: str = "tradesense") -> list[str]:
    ids = []
    for ok in verified:
        manifest = dump_pipeline.run_backup(store, BackupRequest(db, label, compression_level=1), clock=clock)
        if ok:
            manifest = dump_pipeline.verify_backup(store, manifest, clock=clock)
        ids.append(manifest.id)
        clock.advance(timedelta(hours=12))
    return ids


def stored_ids(store: FilesystemStore, label: str = "tradesense") -> list[str]:
    return sorted(m.id for m in dump_pipeline.list_backups(store, label=label))


def test_keep_last_deletes_exactly_the_oldest(source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    ids = make_backups(store, source_db, clock, [True] * 5)
    other = make_backups(store, source_db, clock, [True], label="other")
    deleted = apply_retention(store, "tradesense", now=clock.now(), keep_last=3, max_age=None)
    assert [d.id for d in deleted] == ids[:2]
    assert stored_ids(store) == ids[2:]
    assert stored_ids(store, "other") == other
    names = {p.name for p in store.root.iterdir()}
    assert not any(n.startswith((ids[0], ids[1])) for n in names)


def test_max_age_deletes_exactly_the_old_ones(source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    ids = make_backups(store, source_db, clock, [True] * 5)  # ages at the end: 60h, 48h, 36h, 24h, 12h
    apply_retention(store, "tradesense", now=clock.now(), keep_last=None, max_age=timedelta(hours=30))
    assert stored_ids(store) == ids[3:]


def test_newest_verified_survives_unverified_newer_ones(source_db: PgTarget, store: FilesystemStore,
                                                        clock: ManualClock) -> None:
    ids = make_backups(store, source_db, clock, [True, True, False, False])
    apply_retention(store, "tradesense", now=clock.now(), keep_last=1, max_age=None)
    assert stored_ids(store) == [ids[1], ids[3]]


def test_leftovers_swept_only_when_old(source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    (kept,) = make_backups(store, source_db, clock, [True])
    orphan = store.root / "tradesense_20200101_000000.sql.gz"
    orphan.write_bytes(b"renamed but no manifest")
    partial = store.root / ".tradesense_20200101_000001.sql.gz.partial-abcd"
    partial.write_bytes(b"half")
    foreign = store.root / "notes.txt"
    foreign.write_text("not ours")
    assert sweep_leftovers(store, "tradesense", older_than=time.time() - 3600) == []
    old = time.time() - 7200
    for path in (orphan, partial):
        os.utime(path, (old, old))
    assert sorted(sweep_leftovers(store, "tradesense", older_than=time.time() - 3600)) == sorted(
        [orphan.name, partial.name])
    assert foreign.exists()
    assert stored_ids(store) == [kept]
