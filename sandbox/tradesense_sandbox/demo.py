"""`make demo`: the real operator on the embedded emulated API, working through four sample incidents.

What runs is the production code path — kopf with the operator's incident handlers
(`handlers.incident.register`) and start-up configuration (`handlers.startup.configure`), the incident
engine and the runbook actions; only the Runtime is built from the emulator's kubeconfig instead of the
pod's service account — against:
- an emulated cluster with the generated CRDs and a simulated `tradesense` namespace (postgres, redis,
  backend and frontend Deployments, Services, the `tradesense-secrets` Secret);
- a demo database on the shared PostgreSQL (runbook schema, generated data), dropped at the end;
- the shared Redis, in db 8 under a unique key prefix, whose keys are deleted at the end;
- the stand-in TradeSense app (the API the probes and smoke tests call), backed by both.

Incidents: a complete-failure restart sequence, a high-cpu scale-out, a dry run of security-breach, and a
site-down whose DR failover waits for approval until the demo approves it. Progress is a refreshing table
on a terminal, one line per change otherwise. The exit status is 0 only when every incident ended as
expected and the effects are in place.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import kopf
import psycopg
import redis
import yaml
from psycopg import sql

from tradesense_operator.api.crdgen.files import render_files
from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.handlers import incident as incident_handlers
from tradesense_operator.services.step_adapters.base import Action
from tradesense_sandbox.app import StandinApp
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.operator_rbac import grant
from tradesense_sandbox.runner import handlers_registry, incident_engine, run_operator
from tradesense_sandbox.schema import load_schema, populate
from tradesense_sandbox.tradesense_namespace import install_tradesense

NAMESPACE = "tradesense"
OPERATOR_NAMESPACE = "tradesense-system"
API_VERSION = "ops.tradesense.io/v1alpha1"
KIND = "TradeSenseIncident"
PLURAL = "tradesenseincidents"
REDIS_DB = 8
CRD_DIR = Path(__file__).resolve().parents[2].parent / "crds"
TERMINAL = {"Succeeded", "Failed", "Cancelled"}


@dataclass(frozen=True)
class Services:
    """Where the demo's real PostgreSQL and Redis are."""

    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379

    def dsn(self, dbname: str) -> str:
        """libpq DSN of one database (trust authentication, as on the development machine)."""
        return f"host={self.pg_host} port={self.pg_port} user={self.pg_user} dbname={dbname}"


@dataclass(frozen=True)
class SampleIncident:
    """One incident the demo applies, and the phase it must end in."""

    name: str
    spec: Mapping[str, Any]
    expect: str = "Succeeded"
    approve: tuple[str, ...] = ()


@dataclass
class DemoResult:
    """What happened, for the summary and the exit status."""

    phases: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# -- the outside world --------------------------------------------------------------------------

@contextlib.contextmanager
def demo_database(services: Services) -> Iterator[str]:
    """A uniquely named database with the runbook schema and data; dropped (FORCE) afterwards."""
    name = f"tso_demo_{secrets.token_hex(4)}"
    with psycopg.connect(services.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(services.dsn(name)) as conn:
            load_schema(conn)
            populate(conn, users=50, trades=1000)
        yield name
    finally:
        with psycopg.connect(services.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def demo_redis_prefix(services: Services) -> Iterator[str]:
    """A unique key prefix in db 8 of the shared Redis; every key under it is deleted afterwards."""
    prefix = f"tso-demo-{secrets.token_hex(4)}:"
    client = redis.Redis(host=services.redis_host, port=services.redis_port, db=REDIS_DB)
    try:
        client.ping()
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.unlink(*keys)
        client.close()


def crd_documents() -> list[dict[str, Any]]:
    """The committed CRDs from crds/, or the same documents generated from the models (installed package)."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(CRD_DIR.glob("*.yaml"))] if CRD_DIR.is_dir() else []
    if not texts:
        texts = list(render_files().values())
    documents = [doc for text in texts for doc in yaml.safe_load_all(text) if doc]
    return [doc for doc in documents if doc.get("kind") == "CustomResourceDefinition"]


DEMO_SETTINGS = Settings(step_poll_seconds=0.2, http_port=0, lock_lease_seconds=15)


def operator_registry(
    kubeconfig: Path, operator_settings: Settings = DEMO_SETTINGS, actions: Mapping[StepAction, Action] | None = None
) -> kopf.OperatorRegistry:
    """The incident handlers, with the Runtime built in the operator's own loop (`handlers_registry`).

    `actions` replaces the registry of runbook actions (tests wrap them to stop the operator mid-step).
    """
    engine = () if actions is None else (incident_engine(actions),)
    return handlers_registry(kubeconfig, SystemClock(), *engine, incident_handlers.register, settings=operator_settings)


# -- the incidents ------------------------------------------------------------------------------

def sample_incidents(*, database: str, prefix: str, api_url: str, services: Services) -> list[SampleIncident]:
    """The four sample incidents, all aimed at the simulated namespace and the real services."""
    target = {
        "namespace": NAMESPACE,
        "apiUrl": api_url,
        "database": {"host": services.pg_host, "port": services.pg_port, "database": database,
                     "user": services.pg_user, "sslmode": "disable"},
        "redisConnection": {"host": services.redis_host, "port": services.redis_port, "db": REDIS_DB},
    }
    parameters = {"sessionKeyPattern": f"{prefix}session:*", "cacheKeyPattern": f"{prefix}cache:analytics:*"}
    return [
        SampleIncident("outage", {"runbook": "complete-failure", "severity": "P1", "target": target,
                                  "parameters": parameters, "source": {"kind": "manual"}}),
        SampleIncident("cpu-spike", {"runbook": "high-cpu", "severity": "P3", "target": target,
                                     "parameters": {**parameters, "replicas": 6, "workers": 2}}),
        SampleIncident("breach-rehearsal", {"runbook": "security-breach", "severity": "P1", "target": target,
                                            "parameters": parameters, "dryRun": True}),
        SampleIncident("site-down", {"runbook": "site-down", "severity": "P1", "target": target,
                                     "parameters": parameters}, approve=("dr-failover",)),
    ]


def incident_body(sample: SampleIncident) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": sample.name, "namespace": NAMESPACE},
            "spec": dict(sample.spec)}


# -- live progress ------------------------------------------------------------------------------

class ProgressView:
    """A refreshing table on a terminal; one line per change when the output is a file or a pipe."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._seen: dict[str, str] = {}

    def show(self, incidents: Sequence[Mapping[str, Any]], note: str = "") -> None:
        if self._tty:
            self._stream.write("\x1b[H\x1b[2J" + render_table(incidents) + (f"\n{note}\n" if note else ""))
            self._stream.flush()
            return
        for line in change_lines(incidents, self._seen):
            self._stream.write(line + "\n")
        if note and self._seen.get("__note__") != note:
            self._seen["__note__"] = note
            self._stream.write(note + "\n")
        self._stream.flush()


def _steps(incident: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((incident.get("status") or {}).get("steps") or [])


def render_table(incidents: Sequence[Mapping[str, Any]]) -> str:
    """Incidents with their phase and progress, and each incident's steps with state and message."""
    lines = [f"{'INCIDENT':<18} {'RUNBOOK':<18} {'PHASE':<17} {'STEPS':<7} CURRENT", "-" * 96]
    for incident in incidents:
        status = incident.get("status") or {}
        steps = _steps(incident)
        finished = sum(1 for s in steps if s.get("state") in ("Succeeded", "Skipped", "WouldRun"))
        lines.append(f"{incident['metadata']['name']:<18} {incident['spec']['runbook']:<18} "
                     f"{status.get('phase', 'Pending'):<17} {finished}/{len(steps):<5} {status.get('currentStep') or ''}")
        for step in steps:
            mark = {"Succeeded": "✔", "Skipped": "–", "WouldRun": "○", "Failed": "✘", "Running": "▶",
                    "AwaitingApproval": "⏸"}.get(str(step.get("state")), " ")
            lines.append(f"   {mark} {step['id']:<22} {step.get('state', ''):<16} {str(step.get('message', ''))[:70]}")
    return "\n".join(lines) + "\n"


def change_lines(incidents: Sequence[Mapping[str, Any]], seen: dict[str, str]) -> list[str]:
    """One line for every phase or step state that changed since the last call (`seen` is updated)."""
    out: list[str] = []
    for incident in incidents:
        name = incident["metadata"]["name"]
        phase = str((incident.get("status") or {}).get("phase") or "Pending")
        if seen.get(name) != phase:
            seen[name] = phase
            message = (incident.get("status") or {}).get("message") or ""
            out.append(f"{name}: {phase}" + (f" — {message}" if message else ""))
        for step in _steps(incident):
            key = f"{name}/{step['id']}"
            state = str(step.get("state") or "Pending")
            if state != "Pending" and seen.get(key) != state:
                seen[key] = state
                out.append(f"  {key}: {state} {step.get('message') or ''}".rstrip())
    return out


# -- the run ------------------------------------------------------------------------------------

def _incidents(cluster: EmulatedCluster) -> list[dict[str, Any]]:
    return sorted(cluster.list(API_VERSION, KIND, NAMESPACE), key=lambda i: i["metadata"]["creationTimestamp"])


def drive(cluster: EmulatedCluster, samples: Sequence[SampleIncident], view: ProgressView, *,
          timeout: float, poll: float = 0.3) -> DemoResult:
    """Apply the incidents, approve what they wait for, and follow them until all are terminal."""
    for sample in samples:
        cluster.create(incident_body(sample))
    approved: set[str] = set()
    deadline = time.monotonic() + timeout
    note = ""
    while True:
        incidents = _incidents(cluster)
        by_name = {i["metadata"]["name"]: i for i in incidents}
        for sample in samples:
            phase = (by_name[sample.name].get("status") or {}).get("phase")
            if sample.approve and phase == "AwaitingApproval" and sample.name not in approved:
                cluster.patch(API_VERSION, KIND, sample.name, {"spec": {"approvals": list(sample.approve)}}, NAMESPACE)
                approved.add(sample.name)
                note = f"approved {', '.join(sample.approve)} of {sample.name} (spec.approvals)"
        view.show(incidents, note)
        if all((i.get("status") or {}).get("phase") in TERMINAL for i in incidents):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
    result = DemoResult({n: str((i.get("status") or {}).get("phase") or "Pending") for n, i in by_name.items()})
    for sample in samples:
        if result.phases.get(sample.name) != sample.expect:
            result.problems.append(f"{sample.name}: ended {result.phases.get(sample.name)}, expected {sample.expect}")
    return result


def check_effects(cluster: EmulatedCluster, result: DemoResult) -> list[str]:
    """The changes the incidents promised, read back from the cluster; problems are added to `result`."""
    backend = cluster.get("apps/v1", "Deployment", "backend", NAMESPACE)
    container = backend["spec"]["template"]["spec"]["containers"][0]
    workers = next((e.get("value") for e in container.get("env", []) if e["name"] == "WORKERS"), None)
    dr = cluster.get("v1", "ConfigMap", "dr-activate", NAMESPACE)
    secret = cluster.get("v1", "Secret", "tradesense-secrets", NAMESPACE)
    facts = [
        f"backend replicas: {backend['spec']['replicas']} (high-cpu asked for 6)",
        f"backend WORKERS: {workers} (high-cpu asked for 2)",
        f"DR activation recorded: {dr.get('data', {}).get('activate') == 'true'}",
        f"signing key rotated by the dry run: {'ops.tradesense.io/rotated-by' in secret['metadata'].get('annotations', {})}",
    ]
    if backend["spec"]["replicas"] != 6:
        result.problems.append("backend was not scaled to 6")
    if workers != "2":
        result.problems.append("WORKERS was not set to 2")
    if dr.get("data", {}).get("activate") != "true":
        result.problems.append("the approved DR failover was not recorded")
    if "ops.tradesense.io/rotated-by" in secret["metadata"].get("annotations", {}):
        result.problems.append("the dry run changed the signing secret")
    return facts


def run_demo(*, timeout: float = 90.0, stream: TextIO = sys.stdout, tty: bool | None = None,
             services: Services = Services(), rbac: Sequence[Mapping[str, Any]] = ()) -> DemoResult:
    """Set everything up, run the operator through the sample incidents, tear everything down.

    With `rbac` (the documents of deploy/rbac, `operator_rbac.deploy_rbac()`), the emulated API enforces them and
    the whole operator — kopf's watches, patches and Events, and the runbook actions — authenticates as its
    ServiceAccount, so a missing rule fails the demo.
    """
    started = time.monotonic()
    out = stream
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(EmulatedCluster(pod_ready_delay=0.2))
        for crd in crd_documents():
            cluster.install_crd(crd)
        cluster.create_namespace(OPERATOR_NAMESPACE)
        signing_key = secrets.token_urlsafe(32)
        out.write("• emulated Kubernetes API at " + cluster.url + " with the TradeSense CRDs\n")
        install_tradesense(cluster, NAMESPACE, signing_key=signing_key)
        out.write(f"• namespace {NAMESPACE}: postgres, redis, backend, frontend Deployments Ready\n")
        database = stack.enter_context(demo_database(services))
        prefix = stack.enter_context(demo_redis_prefix(services))
        out.write(f"• PostgreSQL database {database} and Redis db {REDIS_DB} prefix {prefix} (removed at the end)\n")
        app = StandinApp(pg_dsn=services.dsn(database),
                         redis_url=f"redis://{services.redis_host}:{services.redis_port}/{REDIS_DB}",
                         redis_prefix=prefix, signing_key=signing_key)
        app.start()
        stack.callback(app.stop)
        out.write(f"• stand-in TradeSense API at {app.base_url}\n")
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tso-demo-")))
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        token = None
        if rbac:
            identity = grant(cluster, kubeconfig, app_namespace=NAMESPACE, operator_namespace=OPERATOR_NAMESPACE,
                             documents=[dict(document) for document in rbac])
            token = identity.token
            out.write("• RBAC enforced: the operator (kopf and its actions) runs as ServiceAccount "
                      f"{OPERATOR_NAMESPACE}/tradesense-operator with deploy/rbac's rules\n")
        stack.enter_context(run_operator(cluster, token=token, registry=operator_registry(kubeconfig),
                                         memo=kopf.Memo()))
        out.write("• operator running (kopf, incident handlers, engine, runbook actions); applying 4 incidents\n\n")
        out.flush()
        samples = sample_incidents(database=database, prefix=prefix, api_url=app.base_url, services=services)
        result = drive(cluster, samples, ProgressView(out, tty=tty), timeout=timeout)
        facts = check_effects(cluster, result)
    out.write("\nSummary\n")
    for name, phase in result.phases.items():
        out.write(f"  {name:<18} {phase}\n")
    for fact in facts:
        out.write(f"  {fact}\n")
    verdict = "demo OK" if result.ok else "demo FAILED: " + "; ".join(result.problems)
    out.write(f"{verdict} ({time.monotonic() - started:.0f} s)\n")
    out.flush()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m tradesense_sandbox.demo`; exit status 0 when the demo succeeded."""
    parser = argparse.ArgumentParser(prog="tradesense-operator demo", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the incidents")
    parser.add_argument("--plain", action="store_true", help="one line per change even on a terminal")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.ERROR)  # its thread/signal notices are noise in a demo
    result = run_demo(timeout=args.timeout, tty=False if args.plain else None)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
