"""Record a `kubectl tradesense` session and the dashboard screenshot shown in the README.

Runs the real operator (kopf, incident handlers, engine, runbook actions — the `make demo` wiring) on the emulated
API server with the simulated `tradesense` namespace, creates an incident whose scale-out waits for approval and a
dry-run one, runs the installed `kubectl-tradesense` script with a kubeconfig for the emulator (get, a refused and an
accepted approve, get, report), and photographs `kubectl tradesense dashboard` in headless Debian chromium while the
incident waits for approval. Writes docs/console-session.md and docs/images/dashboard.png.

    .venv/bin/python docs/tools/record_console.py
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kopf
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from tradesense_operator.config import Settings
from tradesense_sandbox.demo import operator_registry
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import Endpoint, OperatorHandle
from tradesense_sandbox.tradesense_namespace import install_tradesense

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = str(Path(sys.executable).with_name("kubectl-tradesense"))
API_VERSION, KIND, NAMESPACE = "ops.tradesense.io/v1alpha1", "TradeSenseIncident", "tradesense"
CAPACITY: dict[str, Any] = {
    "runbook": "custom", "severity": "P2", "target": {"namespace": NAMESPACE},
    "steps": [
        {"id": "check-pods", "action": "check-pods"},
        {"id": "scale-backend", "action": "scale", "target": "backend", "params": {"replicas": 5}, "destructive": True},
        {"id": "backend-rollout", "action": "rollout-status", "target": "backend"},
    ],
}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,620")


def phase(cluster: EmulatedCluster, name: str) -> str:
    return str((cluster.get(API_VERSION, KIND, name, NAMESPACE).get("status") or {}).get("phase", ""))


def wait_phase(cluster: EmulatedCluster, name: str, wanted: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while phase(cluster, name) != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} never reached {wanted}")
        time.sleep(0.1)


def screenshot(env: dict[str, str], out: Path, profile: Path) -> None:
    server = subprocess.Popen([PLUGIN, "dashboard"], env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert server.stdout is not None
        url = re.search(r"http://\S+/", server.stdout.readline())
        assert url, "dashboard printed no URL"
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
        try:
            driver.get(url.group(0))
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return document.querySelector('[data-approve]') !== null && "
                "document.getElementById('live').textContent === 'live';"))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(driver.get_screenshot_as_png())
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    os.environ.setdefault("SE_OFFLINE", "true")
    cluster = EmulatedCluster(pod_ready_delay=0.05).start()
    work = Path(tempfile.mkdtemp(prefix="tso-console-"))
    session: list[str] = []
    try:
        cluster.install_crds(REPO_ROOT / "crds")
        install_tradesense(cluster, NAMESPACE, signing_key=secrets.token_urlsafe(16))
        kubeconfig = cluster.write_kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        settings = Settings(step_poll_seconds=0.05, http_port=0, lock_lease_seconds=15)
        operator = OperatorHandle(Endpoint.of(cluster), registry=operator_registry(kubeconfig, settings),
                                  namespaces=[NAMESPACE], memo=kopf.Memo(), settings=None).start()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

        def run(*args: str) -> None:
            result = subprocess.run([PLUGIN, *args], env=env, capture_output=True, text=True, check=False)  # noqa: S603
            session.extend([f"$ kubectl tradesense {' '.join(args)}", (result.stdout + result.stderr).rstrip()])

        try:
            cluster.create({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "cache-check"},
                            "spec": {"runbook": "cache-hit-rate-low", "severity": "P3", "dryRun": True,
                                     "target": {"namespace": NAMESPACE}}}, NAMESPACE)
            cluster.create({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "backend-capacity"},
                            "spec": CAPACITY}, NAMESPACE)
            wait_phase(cluster, "backend-capacity", "AwaitingApproval")
            wait_phase(cluster, "cache-check", "Succeeded")
            run("get")
            run("get", "backend-capacity")
            screenshot(env, REPO_ROOT / "docs" / "images" / "dashboard.png", work / "chromium")
            run("approve", "backend-capacity", "backend-rollout")
            run("approve", "backend-capacity", "scale-backend")
            wait_phase(cluster, "backend-capacity", "Succeeded")
            run("get", "backend-capacity")
            run("report", "backend-capacity")
        finally:
            operator.stop()
    finally:
        cluster.stop()
    body = "\n".join(session)
    (REPO_ROOT / "docs" / "console-session.md").write_text(
        "# A `kubectl tradesense` session\n\nRecorded by `.venv/bin/python docs/tools/record_console.py` against the "
        "real operator on the emulated API server (times are real; the report has no chart because no Prometheus "
        "was given).\n\n````console\n" + body + "\n````\n")


if __name__ == "__main__":
    main()
