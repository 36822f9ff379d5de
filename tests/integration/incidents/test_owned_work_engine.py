"""Through the real operator: a step whose data-moving work outlives its timeout does not let the incident end
(or its namespace lock go) before that work has stopped. The work is a real PostgreSQL session (pg_sleep, the
stand-in for a long COPY) run as owned work; its thread also takes a while to notice that its session was
ended, like a tool finishing its last write. Only orderings are asserted, never durations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.integration.incidents.engine_harness import EngineEnv, default_actions, step
from tests.support.services import PgDatabase
from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.services.backups.owned_work import application_name, run_owned
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepResult
from tradesense_sandbox.kubeapi import EmulatedCluster


@dataclass
class LongCopy:
    """A data-moving action: one long statement in a session of its own, as owned work."""

    target: PgTarget
    name: StepAction = StepAction.SCALE
    destructive: bool = False
    started: threading.Event = field(default_factory=threading.Event)
    finished_at: list[float] = field(default_factory=list)

    async def describe(self, ctx: StepContext) -> str:
        return "would copy for a long time"

    async def run(self, ctx: StepContext) -> StepResult:
        def work(owned: PgTarget) -> None:
            try:
                with owned.connect() as conn:
                    self.started.set()
                    conn.execute("SELECT pg_sleep(600)")
            except Exception:  # noqa: BLE001  (ended from outside: the point of the test)
                pass
            finally:
                time.sleep(1.0)  # slow to wind down after its session is gone
                self.finished_at.append(time.monotonic())

        await run_owned(work, self.target, tag=ctx.stamp, what="long copy")
        return StepResult(Outcome.DONE, "copied")


def sessions(target: PgTarget, name: str) -> int:
    with psycopg.connect(host=target.host, port=target.port, user=target.user, dbname="postgres",
                         autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


async def test_a_timed_out_copy_is_stopped_before_the_incident_fails_and_releases_its_lock(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path,
    operator_factory: Callable[..., object], pg_database: PgDatabase,
) -> None:
    env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)  # type: ignore[arg-type]
    env.create_deployment()
    target = PgTarget(host="127.0.0.1", port=5432, user="postgres", dbname=pg_database.name, sslmode="disable")
    copy = LongCopy(target)
    env.start_operator({**default_actions(), StepAction.SCALE: copy})
    env.create_incident("copy", env.spec({**step("copy", "scale", "web"), "timeoutSeconds": 1, "retries": 0}))

    await env.wait_for("the copy to start", copy.started.is_set)
    failed_seen_at: list[float] = []
    lock_free_seen_at: list[float] = []

    def observe() -> bool:
        now = time.monotonic()
        if not lock_free_seen_at and env.lease_holder() == "":
            lock_free_seen_at.append(now)
        if env.status("copy").get("phase") == "Failed":
            failed_seen_at.append(now)
            return True
        return False

    await env.wait_for("the incident to fail on the step timeout", observe, timeout=60)

    assert copy.finished_at, "the incident failed while its copy was still running"
    assert copy.finished_at[0] < failed_seen_at[0]
    assert lock_free_seen_at
    assert copy.finished_at[0] < lock_free_seen_at[0]
    assert sessions(target, application_name(f"{env.incident('copy')['metadata']['uid']}/copy")) == 0
    assert "did not return within" in env.steps("copy")["copy"]["message"]
