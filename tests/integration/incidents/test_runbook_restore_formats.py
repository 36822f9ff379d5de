"""data-corruption and restore-database runbooks with the faster backup formats (plain-zstd, directory, binary): the
procedure around the restore is unchanged — writes stopped, clean backup checked and a safety copy taken (in
the policy's format), the
destructive steps only when approved — and the database comes back to exactly the backed-up rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.step_adapters.base import Outcome

FORMATS = [BackupFormat.PLAIN_ZSTD, BackupFormat.DIRECTORY, BackupFormat.BINARY]


@pytest.mark.parametrize("backup_policy", FORMATS, indirect=True)
async def test_data_corruption_restores_from_the_policys_format(tradesense: TradesenseEnv, backup_policy: str,
                                                                tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = tradesense
    clean = env.corrupt_data()
    spec = env.spec("data-corruption", severity="P1", parameters={"backupPolicy": backup_policy})
    results = await env.run_plan(spec, skip=("start-traffic", "writable", "backend-rollout", "smoke-test"))
    assert env.env_of("backend")["READ_ONLY"] == "true"
    found = results["find-clean-backup"].evidence
    store = FilesystemStore(tmp_path / "backups")  # the policy's store (the backup_policy fixture's)
    fmt = request.node.callspec.params["backup_policy"]
    assert dump_pipeline.find_backup(store, found["backupId"]).format is fmt
    assert dump_pipeline.find_backup(store, found["safetyBackupId"]).format is fmt  # a fast safety copy too
    assert "restore" not in results  # destructive: not without approval
    assert env.snapshot() != clean

    await env.run_step(spec, env.step(spec, "stop-traffic"))  # approved
    restored = await env.run_step(spec, env.step(spec, "restore"))  # approved
    assert restored.outcome is Outcome.DONE
    assert restored.evidence["backupId"] == found["backupId"]
    assert env.snapshot() == clean
    assert (await env.run_step(spec, env.step(spec, "restore"))).outcome is Outcome.ALREADY_DONE


@pytest.mark.parametrize("backup_policy", FORMATS, indirect=True)
async def test_restore_database_restores_from_the_policys_format(tradesense: TradesenseEnv,
                                                                 backup_policy: str) -> None:
    env = tradesense
    clean = env.corrupt_data()
    spec = env.spec("restore-database", parameters={"backupPolicy": backup_policy})
    await env.run_plan(spec, skip=("start-traffic", "backend-rollout"))
    assert env.deployment("backend")["spec"]["replicas"] == 0
    assert env.snapshot() != clean
    await env.run_step(spec, env.step(spec, "restore"))  # approved
    assert env.snapshot() == clean
    await env.run_step(spec, env.step(spec, "start-traffic"))
    assert env.deployment("backend")["spec"]["replicas"] == 3
