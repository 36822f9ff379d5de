"""tests/e2e: the real-cluster tier (marker `e2e`, excluded from `make test`, run by `make e2e`).

The cluster is the one KUBECONFIG names. Without KUBECONFIG, or when its API server does not answer, every test
here is skipped once, with the reason. Settings (environment):
- TSO_E2E_IMAGE: run the operator in-cluster from this image (else out-of-cluster with the ServiceAccount's token);
- TSO_E2E_APP_IMAGE: image of the simulated workloads (default registry.k8s.io/pause:3.9);
- TSO_E2E_READINESS_TIMEOUT: seconds to wait for pods before readiness-dependent assertions are skipped (60);
- TSO_E2E_PG_HOST, TSO_E2E_PG_PORT, TSO_E2E_PG_DATABASE, TSO_E2E_PG_USER, TSO_E2E_PG_PASSWORD: a PostgreSQL the
  operator can reach, for the BackupPolicy test (skipped without TSO_E2E_PG_HOST).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.environment import Options, e2e_environment
from tests.e2e.harness import cluster_problem, foreign_app_namespace, kubectl_missing
from tests.e2e.scenarios import E2EEnv, PgTarget

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def pg_from_env() -> tuple[PgTarget | None, str]:
    host = os.environ.get("TSO_E2E_PG_HOST")
    if not host:
        return None, ("TSO_E2E_PG_HOST is not set: no PostgreSQL reachable from the operator was given "
                      "(also TSO_E2E_PG_PORT, TSO_E2E_PG_DATABASE, TSO_E2E_PG_USER, TSO_E2E_PG_PASSWORD)")
    return PgTarget(host=host, port=int(os.environ.get("TSO_E2E_PG_PORT", "5432")),
                    database=os.environ.get("TSO_E2E_PG_DATABASE", "tradesense"),
                    user=os.environ.get("TSO_E2E_PG_USER", "tradesense"),
                    password=os.environ.get("TSO_E2E_PG_PASSWORD") or None), ""


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EEnv]:
    kubeconfig = os.environ.get("KUBECONFIG")
    problem = kubectl_missing() or cluster_problem(kubeconfig)
    if problem is not None:
        pytest.skip(problem)
    assert kubeconfig is not None
    foreign = foreign_app_namespace(Path(kubeconfig.split(os.pathsep)[0]))
    if foreign is not None:
        pytest.skip(foreign)
    pg, pg_problem = pg_from_env()
    options = Options(
        workdir=tmp_path_factory.mktemp("e2e"),
        image=os.environ.get("TSO_E2E_IMAGE") or None,
        app_image=os.environ.get("TSO_E2E_APP_IMAGE", "registry.k8s.io/pause:3.9"),
        readiness_timeout=float(os.environ.get("TSO_E2E_READINESS_TIMEOUT", "60")),
        pg=pg, pg_problem=pg_problem,
    )
    with e2e_environment(Path(kubeconfig.split(os.pathsep)[0]), options) as env:
        yield env
