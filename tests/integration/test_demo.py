"""`make demo` end to end, once: the real operator on the emulated API works the four sample incidents to
their expected ends (the dry run changing nothing, the approval granted by the demo), the summary is
printed, and the demo database and Redis keys are gone afterwards; plus the terminal table rendering."""

from __future__ import annotations

import io
import re

import psycopg
import redis

from tradesense_sandbox.demo import REDIS_DB, ProgressView, render_table, run_demo
from tradesense_sandbox.operator_rbac import deploy_rbac


def test_the_sample_incidents_succeed_with_only_the_operators_own_rbac() -> None:
    """The whole operator (kopf and every runbook action of the four incidents) authorized as its ServiceAccount
    by deploy/rbac: a rule missing from the shipped Roles fails here (as a 403 in status), not only in a static
    scan."""
    out = io.StringIO()
    result = run_demo(timeout=60, stream=out, tty=False, rbac=deploy_rbac())
    text = out.getvalue()
    assert "RBAC enforced" in text
    assert result.ok, text
    assert set(result.phases.values()) == {"Succeeded"}, text


def test_demo_runs_every_sample_incident_to_its_expected_end_and_cleans_up() -> None:
    out = io.StringIO()
    result = run_demo(timeout=60, stream=out, tty=False)
    text = out.getvalue()
    assert result.ok, text
    assert result.phases == {"outage": "Succeeded", "cpu-spike": "Succeeded", "breach-rehearsal": "Succeeded",
                             "site-down": "Succeeded"}
    assert "site-down: AwaitingApproval" in text
    assert "approved dr-failover of site-down (spec.approvals)" in text
    assert "breach-rehearsal/rotate-signing-key: WouldRun" in text
    assert "outage/smoke-test: Succeeded smoke test passed" in text
    assert "backend replicas: 6" in text
    assert re.search(r"demo OK \(\d+ s\)", text)

    database = re.search(r"PostgreSQL database (tso_demo_[0-9a-f]+)", text)
    prefix = re.search(r"prefix (tso-demo-[0-9a-f]+:)", text)
    assert database
    assert prefix
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres") as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (database.group(1),)).fetchone()
    assert row == (0,)
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        assert list(client.scan_iter(match=f"{prefix.group(1)}*")) == []
    finally:
        client.close()


def incident(name: str, phase: str, steps: list[tuple[str, str, str]]) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"runbook": "high-cpu"},
            "status": {"phase": phase, "currentStep": steps[-1][0] if steps else None,
                       "steps": [{"id": i, "state": s, "message": m} for i, s, m in steps]}}


def test_table_and_change_lines() -> None:
    running = incident("cpu", "Running", [("scale-backend", "Succeeded", "backend replicas 3 → 8"),
                                          ("set-workers", "Running", "")])
    table = render_table([running])
    assert "cpu                high-cpu           Running           1/2" in table
    assert "✔ scale-backend" in table
    assert "backend replicas 3 → 8" in table

    out = io.StringIO()
    view = ProgressView(out, tty=False)
    view.show([running])
    view.show([running])  # nothing changed: nothing printed
    assert out.getvalue().splitlines() == ["cpu: Running", "  cpu/scale-backend: Succeeded backend replicas 3 → 8",
                                           "  cpu/set-workers: Running"]
    tty = io.StringIO()
    ProgressView(tty, tty=True).show([running], "approved x")
    assert tty.getvalue().startswith("\x1b[H\x1b[2J")
    assert tty.getvalue().endswith("approved x\n")
