"""Record what `kubectl get tsi` and `kubectl describe tsi` print during a complete-failure restart.

Runs the real operator (kopf, incident handlers, engine, runbook actions — the `make demo` wiring) on the emulated
API server with the simulated `tradesense` namespace, a demo database on the local PostgreSQL, Redis and the
stand-in app, applies one complete-failure incident, and runs the real `/usr/bin/kubectl` against the emulator
(through tests/e2e/kubectl_front.py: TLS and server-side Tables) whenever the incident moves to another step.
Writes docs/kubectl-session.md.

    .venv/bin/python docs/tools/record_session.py [--out docs/kubectl-session.md] [--pod-ready-delay 1.5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import kopf  # noqa: E402  (after the path set-up that makes tests.e2e importable)
from tests.e2e.kubectl_front import KubectlFront  # noqa: E402

from tradesense_sandbox.app import StandinApp  # noqa: E402
from tradesense_sandbox.demo import (  # noqa: E402
    API_VERSION,
    KIND,
    NAMESPACE,
    REDIS_DB,
    Services,
    crd_documents,
    demo_database,
    demo_redis_prefix,
    operator_registry,
    sample_incidents,
)
from tradesense_sandbox.kubeapi import EmulatedCluster  # noqa: E402
from tradesense_sandbox.runner import run_operator  # noqa: E402
from tradesense_sandbox.tradesense_namespace import install_tradesense  # noqa: E402

INCIDENT = "outage"
TERMINAL = {"Succeeded", "Failed", "Cancelled"}


def kubectl(kubeconfig: Path, *args: str) -> str:
    """Run kubectl as a person would (KUBECONFIG in the environment), return what it printed."""
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60,  # noqa: S603, S607
                          check=False, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    return done.stdout + done.stderr


def record(out: Path, pod_ready_delay: float, timeout: float) -> None:
    services = Services()
    blocks: list[tuple[str, str, str]] = []  # (note, command, output)
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(EmulatedCluster(pod_ready_delay=pod_ready_delay))
        for crd in crd_documents():
            cluster.install_crd(crd)
        signing_key = secrets.token_urlsafe(32)
        install_tradesense(cluster, NAMESPACE, signing_key=signing_key, timeout=60)
        database = stack.enter_context(demo_database(services))
        prefix = stack.enter_context(demo_redis_prefix(services))
        app = StandinApp(pg_dsn=services.dsn(database),
                         redis_url=f"redis://{services.redis_host}:{services.redis_port}/{REDIS_DB}",
                         redis_prefix=prefix, signing_key=signing_key)
        app.start()
        stack.callback(app.stop)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tso-session-")))
        front = stack.enter_context(KubectlFront(cluster.url, cluster.token))
        config = front.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        operator_config = cluster.write_kubeconfig(workdir / "operator.kubeconfig", namespace=NAMESPACE)
        stack.enter_context(run_operator(cluster, registry=operator_registry(operator_config), memo=kopf.Memo()))

        sample = next(s for s in sample_incidents(database=database, prefix=prefix, api_url=app.base_url,
                                                  services=services) if s.spec["runbook"] == "complete-failure")
        manifest = workdir / "outage.yaml"
        manifest.write_text(_manifest(sample.spec), encoding="utf-8")
        blocks.append(("The incident, as it would be committed to Git or applied by hand:", "cat outage.yaml",
                       manifest.read_text(encoding="utf-8")))
        blocks.append(("", "kubectl apply -f outage.yaml", kubectl(config, "apply", "--validate=false", "-f",
                                                                    str(manifest))))
        seen: set[tuple[str, str]] = set()
        last_table = ""
        described_mid_run = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = cluster.get(API_VERSION, KIND, INCIDENT, NAMESPACE).get("status") or {}
            state = (str(status.get("phase") or ""), str(status.get("currentStep") or ""))
            if state not in seen:
                seen.add(state)
                table = kubectl(config, "get", "tsi")
                if _without_age(table) != last_table:  # the step may have moved on before kubectl asked
                    blocks.append(("", "kubectl get tsi", table))
                    last_table = _without_age(table)
                if state[1] == "backend-rollout" and not described_mid_run:
                    described_mid_run = True
                    blocks.append(("Half-way: postgres and redis were replaced and Ready, the backend is rolling out:",
                                   f"kubectl describe tsi {INCIDENT}", kubectl(config, "describe", "tsi", INCIDENT)))
            if state[0] in TERMINAL:
                break
            time.sleep(0.1)
        blocks.append(("Finished:", f"kubectl describe tsi {INCIDENT}", kubectl(config, "describe", "tsi", INCIDENT)))
        blocks.append(("", "kubectl get tradesense", kubectl(config, "get", "tradesense")))
        version = kubectl(config, "version", "--client").splitlines()[0]
    out.write_text(_markdown(blocks, version), encoding="utf-8")


def _without_age(table: str) -> str:
    return "\n".join(line.rsplit(maxsplit=1)[0] for line in table.splitlines() if line.strip())


def _manifest(spec: dict[str, object]) -> str:
    import yaml  # noqa: PLC0415

    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": INCIDENT, "namespace": NAMESPACE},
            "spec": spec}
    return str(yaml.safe_dump(body, sort_keys=False))


def _markdown(blocks: list[tuple[str, str, str]], version: str) -> str:
    lines = [
        "# `kubectl get tsi` / `kubectl describe tsi` during a complete-failure restart",
        "",
        f"A real terminal session, recorded by `docs/tools/record_session.py`: the real `kubectl` ({version.strip()})",
        "against the emulated API server, while the real operator (kopf, the incident engine,",
        "the runbook actions) works through the runbook's *Emergency restart sequence* on the simulated `tradesense`",
        "namespace (postgres → redis → backend → frontend, each Ready before the next, then the smoke tests against",
        "the stand-in TradeSense API backed by PostgreSQL and Redis). kubectl reaches the emulator through",
        "`tests/e2e/kubectl_front.py`, which adds TLS and renders the server-side Table from the CRD's printer columns",
        "as kube-apiserver does; every line below is kubectl's own output. A `kubectl get tsi` is taken each time",
        "the incident moves to another step. Ports, database names and timestamps are from the recording run.",
        "kubectl sorts Events by their `lastTimestamp`, which has one-second resolution, and its sort is not stable:",
        "Events within the same second (a step's StepStarted and StepSucceeded) may appear in any order, as on any",
        "cluster; the `[n/10]` prefix gives the step order.",
        "",
    ]
    for note, command, output in blocks:
        if note:
            lines += [note, ""]
        lines += ["```console", f"$ {command}", output.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "kubectl-session.md")
    parser.add_argument("--pod-ready-delay", type=float, default=1.5,
                        help="seconds until a new pod is Ready (slower than the tests, so the steps are visible)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    record(args.out, args.pod_ready_delay, args.timeout)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
