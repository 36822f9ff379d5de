"""Fixtures for the runbook integration tests: a simulated `tradesense` namespace on the emulated API,
a real PostgreSQL database and Redis prefix, the stand-in app backed by both, and a step runner.

- `tradesense`: a `TradesenseEnv` (namespace with the four Deployments, Services, `tradesense-secrets`
  holding a planted signing key, the DR ConfigMap; `pg_database`; Redis db 9 under `redis_prefix`; the
  stand-in app on them; a `Runtime` with a KubeClient for the emulator). `env.spec(runbook, **parameters)`
  builds an incident spec aimed at all of it.
- `env.run_step(spec, step)` invokes one action as the engine would (polling WAITING, keeping the step's
  checkpoint across invocations, including a simulated crash-resume via `env.checkpoints`).
- `backup_policy`: BackupPolicy `nightly` with one verified backup of the test database (restore runbooks).
- `operator`: the real operator (kopf + incident handlers + engine + ACTIONS) on the test namespace;
  `env.apply(name, spec)`, `env.wait_phase(name, *phases)`, `env.approve(name, *steps)`, `env.incident_events`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest
import redis

from tests.integration.incidents.engine_harness import EngineEnv
from tests.support.secrets import SecretGuard
from tests.support.services import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB, PgDatabase, runbook_database
from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, TradeSenseIncidentSpec
from tradesense_operator.clients.kube import KubeClient, ObjectRef
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepResult
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_sandbox.app import StandinApp
from tradesense_sandbox.demo import operator_registry
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle
from tradesense_sandbox.schema import TableFingerprint, fingerprint
from tradesense_sandbox.servers import ThrowawayPostgres
from tradesense_sandbox.tradesense_namespace import install_tradesense

STEP_DEADLINE = 20.0
API_VERSION = "ops.tradesense.io/v1alpha1"
KIND = "TradeSenseIncident"
BACKUP_POLICY = "nightly"


@dataclass
class TradesenseEnv:
    """Everything a runbook test acts on and asserts against."""

    cluster: EmulatedCluster
    namespace: str
    runtime: Runtime
    pg: PgDatabase
    redis_prefix: str
    redis: redis.Redis
    app: StandinApp
    signing_key: str
    incident: ObjectRef
    checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)

    def spec(self, runbook: str, **extra: Any) -> TradeSenseIncidentSpec:
        """An incident spec aimed at this environment; `parameters` and `target` merge over the defaults."""
        parameters = {
            "sessionKeyPattern": f"{self.redis_prefix}session:*",
            "cacheKeyPattern": f"{self.redis_prefix}cache:analytics:*",
            **extra.pop("parameters", {}),
        }
        body = {
            "runbook": runbook,
            "target": {
                "namespace": self.namespace,
                "apiUrl": self.app.base_url,
                "database": {"host": "127.0.0.1", "port": 5432, "database": self.pg.name, "user": "postgres",
                             "sslmode": "disable"},
                "redisConnection": {"host": SHARED_REDIS_HOST, "port": SHARED_REDIS_PORT, "db": TEST_REDIS_DB},
                **extra.pop("target", {}),
            },
            "parameters": parameters,
            **extra,
        }
        return TradeSenseIncidentSpec.model_validate(body)

    def context(self, spec: TradeSenseIncidentSpec, step: PlannedStep, attempt: int = 1) -> StepContext:
        checkpoint = self.checkpoints.setdefault(step.id, {})

        async def save(values: Mapping[str, str]) -> None:
            checkpoint.update(values)

        return StepContext(self.runtime, self.incident, spec, step, attempt, dict(checkpoint), save)

    async def run_step(self, spec: TradeSenseIncidentSpec, step: PlannedStep) -> StepResult:
        """Invoke the step's action until it stops WAITING (like the engine's poll loop)."""
        action = ACTIONS[step.action]
        deadline = time.monotonic() + STEP_DEADLINE
        attempt = 1
        while True:
            result = await action.run(self.context(spec, step, attempt))
            if result.outcome is not Outcome.WAITING:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"step {step.id} still waiting after {STEP_DEADLINE}s: {result.message}")
            await asyncio.sleep(min(result.retry_after or 0.05, 0.05))
            attempt += 1

    async def run_plan(
        self, spec: TradeSenseIncidentSpec, *, approved: tuple[str, ...] = (), skip: tuple[str, ...] = ()
    ) -> dict[str, StepResult]:
        """Run the resolved plan in order; destructive steps only when in `approved` (the engine's rule)."""
        results: dict[str, StepResult] = {}
        for step in resolve_plan(spec):
            if step.id in skip or (step.destructive and step.id not in approved):
                continue
            results[step.id] = await self.run_step(spec, step)
        return results

    def step(self, spec: TradeSenseIncidentSpec, step_id: str) -> PlannedStep:
        return next(s for s in resolve_plan(spec) if s.id == step_id)

    def deployment(self, name: str) -> dict[str, Any]:
        return self.cluster.get("apps/v1", "Deployment", name, self.namespace)

    def pods(self, app: str) -> list[dict[str, Any]]:
        return self.cluster.list("v1", "Pod", self.namespace, label_selector=f"app={app}")

    def env_of(self, deployment: str) -> dict[str, str]:
        container = self.deployment(deployment)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "<ref>") for e in container.get("env") or []}

    def key(self, suffix: str) -> str:
        return f"{self.redis_prefix}{suffix}"

    def snapshot(self) -> dict[str, TableFingerprint]:
        """Row counts and checksums of the test database's tables."""
        with self.pg.connect() as conn:
            return fingerprint(conn)

    def corrupt_data(self) -> dict[str, TableFingerprint]:
        """Damage rows and add 4 new (bad) trades, as a faulty release would; returns the `snapshot()` from before,
        what a restore must bring back."""
        clean = self.snapshot()
        with self.pg.connect() as conn:
            conn.execute("UPDATE trades SET quantity = 999999 WHERE id % 3 = 0")
            conn.execute("INSERT INTO trades (user_id, symbol, side, quantity, price, entry_date)"
                         " SELECT user_id, 'BAD', 'buy', 1, 1, now() FROM trades LIMIT 4")
        return clean

    # -- through the real operator (kopf + engine), see `operator` ---------------------------------

    def apply(self, name: str, spec: TradeSenseIncidentSpec) -> None:
        """Create the incident object on the emulated API (the operator picks it up)."""
        metadata = {"name": name, "namespace": self.namespace}
        self.cluster.create({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec.to_api()})

    def incident_obj(self, name: str) -> dict[str, Any]:
        return self.cluster.get(API_VERSION, KIND, name, self.namespace)

    async def wait_phase(self, name: str, *phases: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until the incident's phase is one of `phases`; AssertionError with its status otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.incident_obj(name)
            if (obj.get("status") or {}).get("phase") in phases:
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(f"incident {name} not in {phases} after {timeout}s: {obj.get('status')}")
            await asyncio.sleep(0.05)

    def approve(self, name: str, *step_ids: str) -> None:
        self.cluster.patch(API_VERSION, KIND, name, {"spec": {"approvals": list(step_ids)}}, self.namespace)

    def incident_events(self, name: str) -> list[dict[str, Any]]:
        return self.cluster.events(self.namespace, involved_name=name)


@pytest.fixture
def backup_policy(tradesense: TradesenseEnv, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """BackupPolicy `nightly` on the emulated API; its filesystem store holds one verified backup of the test db.

    Parametrize indirectly with a BackupFormat for another format than plain-gzip.
    """
    env = tradesense
    fmt = BackupFormat(getattr(request, "param", BackupFormat.PLAIN_GZIP))
    root = tmp_path / "backups"
    root.mkdir()
    target = PgTarget(host="127.0.0.1", port=5432, dbname=env.pg.name, user="postgres")
    store = FilesystemStore(str(root))
    clock = ManualClock()
    dumped = dump_pipeline.run_backup(store, BackupRequest(target, BACKUP_POLICY, fmt), clock=clock)
    dump_pipeline.verify_backup(store, dumped, clock=clock)
    env.cluster.create({
        "apiVersion": API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": BACKUP_POLICY, "namespace": env.namespace},
        "spec": {"database": {"host": "127.0.0.1", "database": env.pg.name, "user": "postgres", "sslmode": "disable"},
                 "storage": {"filesystem": {"path": str(root)}}, "format": fmt.value},
    })
    return BACKUP_POLICY


def stat_statements_database(server: ThrowawayPostgres, *, users: int, trades: int) -> dict[str, Any]:
    """Database `tradesense` on `server` (started with pg_stat_statements): the extension, the runbook schema and
    generated rows; returns the `spec.target.database` that reaches it."""
    runbook_database(server, users=users, trades=trades)
    with server.connect("tradesense") as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    return {"host": server.host, "port": server.port, "database": "tradesense", "user": "postgres", "sslmode": "disable"}


OPERATOR_SETTINGS = Settings(step_poll_seconds=0.05, http_port=0, lock_lease_seconds=15)
StartOperator = Callable[..., OperatorHandle]


@pytest.fixture
def start_operator(
    tradesense: TradesenseEnv, kubeconfig_path: Path, operator_factory: Callable[..., OperatorHandle]
) -> StartOperator:
    """`start(actions=None)`: a real operator (kopf, incident handlers, engine) on the test namespace, polling fast."""

    def start(actions: Mapping[StepAction, Action] | None = None) -> OperatorHandle:
        registry = operator_registry(kubeconfig_path, OPERATOR_SETTINGS, actions)
        return operator_factory(registry=registry, namespaces=[tradesense.namespace], memo=kopf.Memo())

    return start


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorHandle:
    """The real operator with the production ACTIONS."""
    return start_operator()


@pytest.fixture
async def tradesense(  # noqa: PLR0917
    kube_cluster: EmulatedCluster,
    test_namespace: str,
    kubeconfig_path: Path,
    pg_database: PgDatabase,
    redis_url: str,
    redis_prefix: str,
    standin_app_factory: Callable[..., StandinApp],
    secret_guard: SecretGuard,
) -> AsyncIterator[TradesenseEnv]:
    signing_key = secret_guard.plant(secrets.token_urlsafe(32))
    kube_cluster.pod_ready_delay = 0.05
    await asyncio.to_thread(
        install_tradesense, kube_cluster, test_namespace, signing_key=signing_key, create_namespace=False
    )
    app = standin_app_factory(pg_dsn=pg_database.dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                              signing_key=signing_key)
    kube = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    runtime = Runtime(kube=kube, settings=Settings(step_poll_seconds=0.05))
    client = redis.Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB, decode_responses=True)
    incident = ObjectRef("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "test-incident", test_namespace,
                         uid=secrets.token_hex(8))
    try:
        yield TradesenseEnv(kube_cluster, test_namespace, runtime, pg_database, redis_prefix, client, app,
                            signing_key, incident)
    finally:
        client.close()
        await runtime.aclose()


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory: Any) -> EngineEnv:
    """The engine harness (test_engine_*.py) in this test's namespace, with Deployment `web` to act on."""
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env
