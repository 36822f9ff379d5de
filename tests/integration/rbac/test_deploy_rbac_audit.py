"""deploy/rbac grants nothing the operator does not use: every rule is exercised by a test run with RBAC in force.

The audit runs every test parametrized `deploy-rbac` (tests/support/rbac.py: the whole operator as its
ServiceAccount, deploy/rbac's rules enforced by the emulated API) and the tests/e2e suite on the emulator (the
`tradesense-operator run` process with its ServiceAccount's token, deploy/ installed as shipped) in a child pytest,
collects the grants each run used (the emulator records what RBAC let through, per token), and fails naming
each grant of deploy/rbac that no run needed — a rule to remove, or a test to add. Grants no such run can reach
are allowed below, each with its reason; an allowed grant that a run did use is reported too, so the list cannot
go stale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.rbac import DEPLOY_RBAC, USAGE_DIR_VARIABLE
from tradesense_sandbox.kubeapi.rbac import Grant
from tradesense_sandbox.operator_rbac import all_grants, deploy_rbac

REPO = Path(__file__).resolve().parents[3]

ONLY_OUTSIDE_THE_RBAC_RUNS: dict[Grant, str] = {
    Grant("ClusterRole tradesense-operator", "patch", "ops.tradesense.io", "scalingpolicies"):
        "kopf removes the finalizer an earlier release put on ScalingPolicies (an upgrade); the runs start with "
        "objects this release created, which carry none",
    Grant("Role tradesense-operator", "get", "apps", "statefulsets"):
        "the physical point-in-time restore of a StatefulSet database (tests/integration/pitr restores a "
        "Deployment-run database, as admin)",
    Grant("Role tradesense-operator", "patch", "apps", "statefulsets/scale"):
        "see `get statefulsets` above",
    Grant("ClusterRole tradesense-operator", "get", "", "namespaces"):
        "the alert bridge's check that an alert's namespace exists (its incident create answered NotFound), and "
        "the engine's freeze check where list/watch of namespaces is denied; with the deploy RBAC the engine reads "
        "namespaces from its watch cache",
}


def _used_in_child_run(directory: Path) -> set[Grant]:
    env = {**os.environ, USAGE_DIR_VARIABLE: str(directory)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not e2e",
               "-k", f"{DEPLOY_RBAC} or TestOnEmulatedCluster", "-n", "2", "--dist", "loadfile",
               "tests/integration", "tests/reliability"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, f"the deploy-rbac runs failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in directory.glob("*.json")]
    assert len(runs) >= 8, f"expected the deploy-rbac runs of every area, got {[r['test'] for r in runs]}"
    return {Grant(**grant) for run in runs for grant in run["used"]}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_every_grant_of_deploy_rbac_is_used_by_a_run_with_rbac_in_force(tmp_path: Path) -> None:
    used = _used_in_child_run(tmp_path)
    granted = all_grants(deploy_rbac())
    unused = sorted(granted - used - set(ONLY_OUTSIDE_THE_RBAC_RUNS))
    assert not unused, "deploy/rbac grants what no RBAC run used (remove the rule or add a deploy-rbac test):\n" + \
        "\n".join(g.describe() for g in unused)
    stale = sorted(set(ONLY_OUTSIDE_THE_RBAC_RUNS) & used)
    assert not stale, "allowed as unexercised, but a run used them (drop them from the list):\n" + \
        "\n".join(g.describe() for g in stale)
    assert set(ONLY_OUTSIDE_THE_RBAC_RUNS) <= granted, "the allow-list names grants deploy/rbac no longer makes"
