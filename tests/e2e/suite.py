"""The end-to-end test methods, shared by the real-cluster tier and the emulated one.

A tier subclasses `E2ESuite` (in a `test_*.py` module) and provides the `env` fixture; pytest collects the inherited
methods there. This module itself holds no test_* module name, so it is never collected on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e import scenarios
from tests.e2e.scenarios import E2EEnv


class E2ESuite:
    """Every scenario once; each asserts its effects through the API (see scenarios.py)."""

    def test_dry_run_touches_nothing_and_reapply_is_a_noop(self, env: E2EEnv) -> None:
        done = scenarios.dry_run(env)
        body = scenarios.incident(env, done["metadata"]["name"], "high-cpu", dryRun=True,
                                  parameters={"replicas": 6, "workers": 2})
        scenarios.reapply_is_noop(env, body)
        scenarios.kubectl_views(env, done["metadata"]["name"])

    def test_kubectl_apply_twice_is_unchanged(self, env: E2EEnv, tmp_path: Path) -> None:
        scenarios.kubectl_apply_twice_is_unchanged(env, tmp_path)

    @pytest.mark.parametrize("scenario", [
        pytest.param(scenarios.high_cpu_scale_out, id="high-cpu-scales-out"),
        pytest.param(scenarios.custom_rollout_restart, id="custom-rollout-restart"),
        pytest.param(scenarios.evicted_and_terminating_pods, id="evicted-pod-ignored-and-terminating-pod-reported"),
        pytest.param(scenarios.backup_policy, id="backup-policy-backs-up-a-reachable-postgres"),
        pytest.param(scenarios.scaling_policy, id="scaling-policy-fallback-pause-and-hpa-conflict"),
        pytest.param(scenarios.rbac_is_enforced, id="operator-token-is-least-privilege"),
    ])
    def test_scenario(self, env: E2EEnv, scenario: Callable[[E2EEnv], object]) -> None:
        scenario(env)

    def test_samples_apply_server_side(self, env: E2EEnv) -> None:
        scenarios.server_side_apply_samples(env)
