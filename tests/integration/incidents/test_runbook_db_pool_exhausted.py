"""db-pool-exhausted runbook: the backend scaled out to 5 and the leaked connection (a session left idle in
a transaction on the real PostgreSQL) reported as evidence."""

from __future__ import annotations

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome


async def test_scales_backend_and_reports_the_idle_in_transaction_session(tradesense: TradesenseEnv) -> None:
    env = tradesense
    leak = env.pg.connect(autocommit=False)
    try:
        leak.execute("SET application_name = 'leaky-worker'")
        leak.execute("SELECT count(*) FROM trades")  # opens a transaction and leaves it open
        spec = env.spec("db-pool-exhausted")
        results = await env.run_plan(spec)
    finally:
        leak.close()

    assert env.deployment("backend")["spec"]["replicas"] == 5
    assert results["scale-backend"].outcome is Outcome.DONE
    report = results["connection-leaks"]
    assert int(report.evidence["state.idle in transaction"]) >= 1
    assert any("leaky-worker" in v and "SELECT count(*) FROM trades" in v
               for k, v in report.evidence.items() if k.startswith("idle"))
