"""The end-to-end suite against the cluster KUBECONFIG names (settings: conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.scenarios import E2EEnv
from tests.e2e.suite import E2ESuite


class TestOnCluster(E2ESuite):
    @pytest.fixture
    def env(self, e2e_env: E2EEnv) -> E2EEnv:
        return e2e_env
