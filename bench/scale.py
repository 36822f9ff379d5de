"""Scale benchmark: tradesense-operator against its framework's floor on the same emulated API.

One run, two fresh emulated clusters (the same API server the tests use), each with N incidents (default
1,000) across 50 namespaces, plus 100 suspended BackupPolicies and 100 paused ScalingPolicies (they cost
timers and status writes, never backups or scaling):
  tradesense  `python -m tradesense_operator run --standalone` as a subprocess — the production code path
              with every handler — TSO_STEP_POLL_SECONDS as given (default 0.5).
              Incidents: 30 % real `custom` runbooks of two cheap kube-only steps (set-env, scale on the
              namespace's `backend` Deployment; the per-namespace lock serializes them), 70 % dry runs of
              every catalogue runbook that plans without parameters (their data-plane targets are a closed
              loopback port, so describing a step fails fast instead of touching anything).
  floor       bench/floor/minimal_operator.py: kopf, one status patch per incident on create.
Printed for each: time from the first creation until every incident is terminal, p50/p99 latency from
creation to the first step starting (floor: to its one status write), peak RSS and CPU seconds per incident
of the operator process (CPU time is the figure to compare on a shared machine: wall-clock times move
with whatever else runs),
API requests per incident (the emulator counts every request; requests on BackupPolicies and ScalingPolicies
are not counted there but shown as a rate, next to the idle request rate measured for 5 s before the
incidents), and the ratios.

Run: `.venv/bin/python bench/scale.py [--incidents 1000] [--namespaces 50] [--policies 100] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tradesense_operator.api.v1alpha1.incident import Runbook, TradeSenseIncidentSpec
from tradesense_operator.domain.runbooks import PlanError, resolve_plan
from tradesense_sandbox.kubeapi import EmulatedCluster

REPO = Path(__file__).resolve().parents[1]
API = "ops.tradesense.io/v1alpha1"
CLOSED = {"host": "127.0.0.1", "port": 1}
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
STARTED = {"Running", "Succeeded", "Failed", "Skipped", "WouldRun"}


@dataclass
class Tracker:
    """Per-incident timestamps from the emulator's store (a listener runs on every write)."""

    created: dict[str, float] = field(default_factory=dict)
    first_step: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, float] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    floor_mode: bool = False

    def listen(self, rtype: Any, event_type: str, obj: dict[str, Any], _old: Any) -> None:
        if rtype.kind != "TradeSenseIncident" or event_type != "MODIFIED":
            return
        meta, status = obj["metadata"], obj.get("status") or {}
        key = f"{meta['namespace']}/{meta['name']}"
        now = time.monotonic()
        phase = status.get("phase")
        with self.lock:
            if key not in self.first_step:
                steps = status.get("steps") or []
                if (self.floor_mode and phase) or any(s.get("state") in STARTED for s in steps):
                    self.first_step[key] = now
            if phase in TERMINAL and key not in self.terminal:
                self.terminal[key] = now
                self.phases[key] = str(phase)


@dataclass
class Result:
    name: str
    incidents: int
    terminal: int
    seconds_to_all_terminal: float
    p50_first_step: float
    p99_first_step: float
    peak_rss_mb: float
    cpu_ms_per_incident: float
    requests_per_incident: float
    background_requests_per_second: float
    policy_requests_per_second: float
    phases: dict[str, int]
    requests_by_verb: dict[str, int]


def dry_runnable_runbooks() -> list[str]:
    """Catalogue runbooks that plan without extra parameters (data-corruption etc. need a BackupPolicy)."""
    usable = []
    for runbook in Runbook:
        if runbook is Runbook.CUSTOM:
            continue
        try:
            resolve_plan(TradeSenseIncidentSpec.model_validate({"runbook": runbook.value}))
        except (PlanError, ValueError):
            continue
        usable.append(runbook.value)
    return usable


def incident_spec(index: int, namespace: str, runbooks: list[str]) -> dict[str, Any]:
    target = {"namespace": namespace, "apiUrl": "http://127.0.0.1:1",
              "database": {**CLOSED, "database": "tradesense", "user": "u"}, "redisConnection": CLOSED}
    if index % 10 < 3:  # real: cheap, kube-only
        return {"runbook": "custom", "severity": "P3", "target": target, "steps": [
            {"id": "mark", "action": "set-env", "target": "backend", "params": {"name": "BENCH", "value": str(index)}},
            {"id": "scale", "action": "scale", "target": "backend", "params": {"replicas": 2}},
        ]}
    return {"runbook": runbooks[index % len(runbooks)], "severity": "P2", "dryRun": True, "target": target}


def populate(cluster: EmulatedCluster, namespaces: int, policies: int) -> list[str]:
    names = [f"bench-{i:02d}" for i in range(namespaces)]
    for ns in names:
        cluster.create_namespace(ns)
        cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend", "namespace": ns},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "backend"}},
                                 "template": {"metadata": {"labels": {"app": "backend"}},
                                              "spec": {"containers": [{"name": "backend", "image": "b:1"}]}}}})
    for i in range(policies):
        ns = names[i % namespaces]
        cluster.create({"apiVersion": API, "kind": "BackupPolicy", "metadata": {"name": f"bp-{i}", "namespace": ns},
                        "spec": {"database": {**CLOSED, "database": "tradesense", "user": "u"}, "schedule": "0 2 * * *",
                                 "suspend": True, "storage": {"filesystem": {"path": f"/tmp/tso-bench/{i}"}}}})
        cluster.create({"apiVersion": API, "kind": "ScalingPolicy",
                        "metadata": {"name": f"sp-{i}", "namespace": ns,
                                     "annotations": {"ops.tradesense.io/paused": "true"}},
                        "spec": {"targetRef": {"name": "backend"}, "minReplicas": 1, "maxReplicas": 3,
                                 "metrics": [{"name": "rps", "preset": "request-rate",
                                              "target": {"type": "AverageValue", "value": 50}}]}})
    return names


class RssSampler(threading.Thread):
    """Peak RSS of a process and its children, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.cpu = 0.0  # user + system seconds of the process tree, at the last sample
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
                self.cpu = sum(sum(p.cpu_times()[:2]) for p in procs)
            except psutil.Error:
                pass
            self.stop.wait(0.1)


def run_one(name: str, command: list[str], env: dict[str, str], args: argparse.Namespace) -> Result:  # noqa: PLR0915
    cluster = EmulatedCluster(pod_ready_delay=0.05, history_size=max(50_000, args.incidents * 60)).start()
    tracker = Tracker(floor_mode=name == "floor")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cluster.install_crds(REPO / "crds")
            names = populate(cluster, args.namespaces, args.policies)
            kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
            log = Path(tmp) / "log"
            process = subprocess.Popen(command, env={**os.environ, **env, "KUBECONFIG": str(kubeconfig)},
                                       cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"))
            sampler = RssSampler(process.pid)
            sampler.start()
            try:
                time.sleep(args.warmup)  # startup, initial lists, the policies' first timer ticks
                before = cluster.stats.total()
                time.sleep(5.0)
                background = (cluster.stats.total() - before) / 5.0
                cluster.store.add_listener(tracker.listen)
                runbooks = dry_runnable_runbooks()
                start_requests = cluster.stats.snapshot()
                start_cpu = sampler.cpu
                started = time.monotonic()
                for i in range(args.incidents):
                    ns = names[i % len(names)]
                    key = f"{ns}/inc-{i}"
                    with tracker.lock:
                        tracker.created[key] = time.monotonic()
                    cluster.create({"apiVersion": API, "kind": "TradeSenseIncident",
                                    "metadata": {"name": f"inc-{i}", "namespace": ns},
                                    "spec": incident_spec(i, ns, runbooks)})
                deadline = started + args.timeout
                while len(tracker.terminal) < args.incidents and time.monotonic() < deadline:
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited with {process.returncode}: {log.read_text()[-2000:]}")
                    time.sleep(0.2)
                finished = max(tracker.terminal.values(), default=time.monotonic())
                elapsed = time.monotonic() - started
                end_requests = cluster.stats.snapshot()
                time.sleep(0.2)
                cpu_seconds = sampler.cpu - start_cpu
            finally:
                sampler.stop.set()
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            delta = {k: end_requests.get(k, 0) - start_requests.get(k, 0) for k in end_requests}
            by_verb: dict[str, int] = {}
            for (verb, resource), count in delta.items():
                if count:
                    label = f"{verb} {resource}"
                    by_verb[label] = by_verb.get(label, 0) + count
            latencies = sorted(tracker.first_step[k] - tracker.created[k] for k in tracker.first_step
                               if k in tracker.created)
            policies = {"backuppolicies", "backuppolicies/status", "scalingpolicies", "scalingpolicies/status"}
            own = sum(n for (_, resource), n in delta.items() if resource not in policies)
            policy_rate = sum(n for (_, resource), n in delta.items() if resource in policies) / max(elapsed, 1e-9)
            phases: dict[str, int] = {}
            for phase in tracker.phases.values():
                phases[phase] = phases.get(phase, 0) + 1
            return Result(
                name=name, incidents=args.incidents, terminal=len(tracker.terminal),
                seconds_to_all_terminal=round(finished - started, 2),
                p50_first_step=round(_quantile(latencies, 0.50), 3), p99_first_step=round(_quantile(latencies, 0.99), 3),
                peak_rss_mb=round(sampler.peak / 2**20, 1),
                cpu_ms_per_incident=round(1000 * cpu_seconds / args.incidents, 1),
                requests_per_incident=round(own / args.incidents, 1),
                background_requests_per_second=round(background, 1),
                policy_requests_per_second=round(policy_rate, 1), phases=phases,
                requests_by_verb=dict(sorted(by_verb.items(), key=lambda kv: -kv[1])[:12]),
            )
        finally:
            cluster.stop()


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--policies", type=int, default=100, help="BackupPolicies and ScalingPolicies, each")
    parser.add_argument("--step-poll", type=float, default=0.5, help="TSO_STEP_POLL_SECONDS of the operator")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--only", choices=["tradesense", "floor"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None,
                        help="run tradesense-operator under cProfile and write its stats here (pstats format)")
    args = parser.parse_args(argv)
    profiler = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []

    runs: dict[str, Callable[[], Result]] = {
        "tradesense": lambda: run_one("tradesense", [
            sys.executable, *profiler, "-m", "tradesense_operator", "run", "--standalone", "--liveness=http://127.0.0.1:0/healthz",
        ], {"TSO_HTTP_PORT": "0", "TSO_STEP_POLL_SECONDS": str(args.step_poll), "TSO_LOG_LEVEL": "WARNING",
            "TSO_LOCK_LEASE_SECONDS": "15"}, args),
        "floor": lambda: run_one("floor", [sys.executable, str(REPO / "bench" / "floor" / "minimal_operator.py")], {}, args),
    }
    results = [runs[name]() for name in runs if args.only in (None, name)]
    print(f"scale: {args.incidents} incidents in {args.namespaces} namespaces, {args.policies} BackupPolicies "
          f"(suspended) + {args.policies} ScalingPolicies (paused); step poll {args.step_poll}s")
    header = (f"{'':12}{'terminal':>10}{'all done s':>12}{'p50 s':>9}{'p99 s':>9}{'RSS MB':>9}"
              f"{'cpu ms/inc':>11}{'req/inc':>9}"
              f"{'idle req/s':>11}{'policy req/s':>13}")
    print(header)
    for r in results:
        print(f"{r.name:12}{r.terminal:>10}{r.seconds_to_all_terminal:>12}{r.p50_first_step:>9}{r.p99_first_step:>9}"
              f"{r.peak_rss_mb:>9}{r.cpu_ms_per_incident:>11}{r.requests_per_incident:>9}"
              f"{r.background_requests_per_second:>11}"
              f"{r.policy_requests_per_second:>13}")
    if len(results) == 2:
        ours, floor = results
        print("ratios tradesense/floor: "
              f"all-done {ours.seconds_to_all_terminal / floor.seconds_to_all_terminal:.1f}x, "
              f"p50 {ours.p50_first_step / floor.p50_first_step:.1f}x, "
              f"p99 {ours.p99_first_step / floor.p99_first_step:.1f}x, "
              f"RSS {ours.peak_rss_mb / floor.peak_rss_mb:.1f}x, "
              f"CPU/incident {ours.cpu_ms_per_incident / max(floor.cpu_ms_per_incident, 0.1):.1f}x, requests/incident "
              f"{ours.requests_per_incident / max(floor.requests_per_incident, 0.1):.1f}x")
    for r in results:
        print(f"{r.name} phases {r.phases}; top requests {r.requests_by_verb}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0 if all(r.terminal == r.incidents for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
