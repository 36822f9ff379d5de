"""The end-to-end test methods, shared by the real-cluster tier and the emulated one.

A tier subclasses `E2ESuite` (in a `test_*.py` module) and provides the `env` fixture; pytest collects the inherited
methods there. This module itself holds no test_* module name, so it is never collected on its own.
"""

from __future__ import annotations

from pathlib import Path

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

    def test_high_cpu_scales_out(self, env: E2EEnv) -> None:
        scenarios.high_cpu_scale_out(env)

    def test_custom_rollout_restart(self, env: E2EEnv) -> None:
        scenarios.custom_rollout_restart(env)

    def test_evicted_pod_ignored_and_terminating_pod_reported(self, env: E2EEnv) -> None:
        scenarios.evicted_and_terminating_pods(env)

    def test_backup_policy_backs_up_a_reachable_postgres(self, env: E2EEnv) -> None:
        scenarios.backup_policy(env)

    def test_scaling_policy_fallback_pause_and_hpa_conflict(self, env: E2EEnv) -> None:
        scenarios.scaling_policy(env)

    def test_operator_token_is_least_privilege(self, env: E2EEnv) -> None:
        scenarios.rbac_is_enforced(env)

    def test_samples_apply_server_side(self, env: E2EEnv) -> None:
        scenarios.server_side_apply_samples(env)
