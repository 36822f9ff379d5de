"""The runbooks' point-in-time path (restore-database / data-corruption with parameters.targetTime): the
target is replayed in a scratch instance and dumped as a verified `point-in-time` backup (found again by
the incident's stamp on a re-run), which the runbook's logical restore then loads into the damaged
database: every row committed before T is back, the corruption and everything begun after T gone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.pitr.conftest import LABEL, RUN_AS, Writer, corrupted_after_target, ids
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import pitr_materialize
from tradesense_operator.services.backups.restore import RestoreRefused, restore_database_sync
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

pytestmark = pytest.mark.slow


def test_point_in_time_backup_loaded_by_the_runbook_restore(
    source: ThrowawayPostgres, store: FilesystemStore, archiver: WalArchiver, writer: Writer, tmp_path: Path,
    *, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if RUN_AS:
        monkeypatch.setenv(pitr_materialize.RUN_AS_ENV, RUN_AS)
    source.create_database("app")
    app = PgTarget(host=source.host, port=source.port, dbname="app", user=source.user)
    with source.connect("app") as conn:
        conn.execute("CREATE TABLE trades (id bigserial PRIMARY KEY, note text NOT NULL, "
                     "at timestamptz NOT NULL DEFAULT clock_timestamp())")
    writer.server_db = "app"
    _, target = corrupted_after_target(source, store, archiver, writer, tmp_path / "bb")

    with pytest.raises(RestoreRefused, match="invalid restore target"):
        pitr_materialize.plan_sync(store, LABEL, now=datetime.now(UTC), target_time="yesterday", target_lsn=None)
    plan = pitr_materialize.plan_sync(store, LABEL, now=datetime.now(UTC), target_time=target.isoformat(),
                                      target_lsn=None)
    assert plan.target_time == target

    manifest, used = pitr_materialize.materialize_sync(store, LABEL, app, stamp="incident-1", clock=SystemClock(),
                                                       target_time=target.isoformat(), target_lsn=None)
    assert used is not None
    assert manifest.verified
    again, replanned = pitr_materialize.materialize_sync(store, LABEL, app, stamp="incident-1", clock=SystemClock(),
                                                         target_time=target.isoformat(), target_lsn=None)
    assert again.id == manifest.id
    assert replanned is None  # found by its stamp: no second replay

    report = restore_database_sync(store, app, manifest, stamp="incident-1", safety_backup_id="taken-by-the-runbook")
    assert not report.already_done
    restored = ids(f"host={source.host} port={source.port} user={source.user} dbname=app")
    writer.assert_restored_to(target, restored)
