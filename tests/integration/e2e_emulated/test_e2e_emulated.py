"""tests/e2e's scenarios on the emulated cluster (default tier): the same functions, the real operator process.

kubectl is the real binary, through tests/e2e/kubectl_front.py (TLS, server-side Tables). Scenarios the emulator
cannot support skip with the reason (server-side dry run). The operator runs as its ServiceAccount with deploy/rbac
enforced, as on a real cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import scenarios
from tests.e2e.harness import E2E_LABEL, cluster_problem, foreign_app_namespace
from tests.e2e.scenarios import E2EEnv
from tests.e2e.suite import E2ESuite
from tradesense_sandbox.kubeapi import EmulatedCluster


class TestOnEmulatedCluster(E2ESuite):
    """Every scenario of tests/e2e; the samples go to a cluster of their own (see below)."""

    @pytest.fixture
    def env(self, emulated_env: E2EEnv) -> E2EEnv:
        return emulated_env

    def test_samples_apply_server_side(self, env: E2EEnv, samples_env: E2EEnv) -> None:
        """The emulator has no server-side dry run: the samples are applied for real, where no operator runs them."""
        scenarios.server_side_apply_samples(samples_env)


def test_pending_pods_skip_only_the_readiness_part_and_say_so(pending_cluster_env: E2EEnv) -> None:
    """On an API server whose pods never become ready the scale-out is still asserted, then the rest is skipped."""
    with pytest.raises(pytest.skip.Exception, match=r"stayed Pending/unready for 3s .* readiness-dependent part"):
        scenarios.high_cpu_scale_out(pending_cluster_env)


def test_no_cluster_is_a_clear_skip_reason(tmp_path: Path) -> None:
    assert "KUBECONFIG is not set" in (cluster_problem(None) or "")
    assert "does not exist" in (cluster_problem(str(tmp_path / "missing")) or "")
    dead = tmp_path / "dead"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n",
        encoding="utf-8")
    assert "is unreachable" in (cluster_problem(str(dead)) or "")


def test_an_existing_tradesense_namespace_is_never_adopted(tmp_path: Path) -> None:
    with EmulatedCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        assert foreign_app_namespace(kubeconfig) is None
        cluster.create_namespace("tradesense")
        assert "refusing to run incidents against it" in (foreign_app_namespace(kubeconfig) or "")
        cluster.patch("v1", "Namespace", "tradesense", {"metadata": {"labels": {E2E_LABEL: "true"}}})
        assert foreign_app_namespace(kubeconfig) is None
