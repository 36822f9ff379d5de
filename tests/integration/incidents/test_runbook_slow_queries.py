"""slow-queries runbook on a throwaway PostgreSQL (it changes a server setting, so never the shared one) with
pg_stat_statements loaded: log_min_duration_statement set and reloaded, the slow statements listed, ANALYZE,
index candidates, and CREATE INDEX CONCURRENTLY only as the approved step — a repeat finds it done."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.incidents.conftest import TradesenseEnv, stat_statements_database
from tradesense_operator.services.step_adapters.base import Outcome
from tradesense_sandbox.servers import ThrowawayPostgres


def index_names(server: ThrowawayPostgres) -> set[str]:
    with server.connect("tradesense") as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'trades'").fetchall()
    return {str(r[0]) for r in rows}


async def test_slow_query_runbook_indexes_only_when_approved(
    tradesense: TradesenseEnv, throwaway_pg_factory: Callable[..., ThrowawayPostgres]
) -> None:
    env = tradesense
    server = throwaway_pg_factory(pg_stat_statements=True)
    database = stat_statements_database(server, users=50, trades=2000)
    with server.connect("tradesense") as conn:
        for _ in range(2):
            conn.execute("SELECT pg_sleep(0.15), count(*) FROM trades")
    spec = env.spec("slow-queries", target={"database": database})

    results = await env.run_plan(spec)  # create-index is destructive: not approved, not run

    assert results["log-slow-statements"].evidence["ms"] == "100"
    with server.connect() as conn:
        assert conn.execute("SHOW log_min_duration_statement").fetchone() == ("100ms",)
    top = results["top-queries"]
    assert top.outcome is Outcome.DONE
    assert any("pg_sleep" in v for v in top.evidence.values())
    assert results["analyze"].outcome is Outcome.DONE
    assert results["missing-indexes"].outcome is Outcome.DONE
    assert "create-index" not in results
    assert "idx_trades_user_date" not in index_names(server)

    created = await env.run_step(spec, env.step(spec, "create-index"))  # approved
    assert created.outcome is Outcome.DONE
    assert "idx_trades_user_date" in index_names(server)
    with server.connect("tradesense") as conn:
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_trades_user_date'").fetchone()
    assert definition is not None
    assert "(user_id, entry_date) WHERE (deleted_at IS NULL)" in definition[0]
    assert (await env.run_step(spec, env.step(spec, "create-index"))).outcome is Outcome.ALREADY_DONE
    assert (await env.run_step(spec, env.step(spec, "log-slow-statements"))).outcome is Outcome.ALREADY_DONE
