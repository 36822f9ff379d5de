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

Two more measurements, each on a fresh emulated cluster:
  idle        --idle-policies N paused ScalingPolicies + N suspended BackupPolicies (default 1,000 each) and
              no incidents: once every policy shows a status and the API has seen at most one request in 5 s,
              API requests per second and CPU of the operator over --idle-window seconds (the floor
              operator watches the same cluster).
  active      --active-policies N ScalingPolicies (default 1,000, pollingIntervalSeconds --active-interval),
              each on its own Deployment, all reading one real Prometheus (a throwaway server scraping a gauge
              this script serves every second). The gauge steps from below to above the target; latency is
              from the moment Prometheus first answers the policies' query with the new value to each
              Deployment's replicas changing (median, p90, all scaled), and the CPU seconds the operator and this
              process (the emulated API) spent over that time. Prometheus queries per evaluation round
              are counted in Prometheus' own query log: queries / (window / pollingIntervalSeconds). Baseline: the
              same with one policy, in the same run.

Run: `.venv/bin/python bench/scale.py [--incidents 1000] [--namespaces 50] [--policies 100] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from tradesense_operator.api.v1alpha1.incident import Runbook, TradeSenseIncidentSpec
from tradesense_operator.cli.run import tune_gc
from tradesense_operator.domain.runbooks import PlanError, resolve_plan
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.servers.prometheus import PrometheusServer

REPO = Path(__file__).resolve().parents[1]
API = "ops.tradesense.io/v1alpha1"
CLOSED = {"host": "127.0.0.1", "port": 1}
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
STARTED = {"Running", "Succeeded", "Failed", "Skipped", "WouldRun"}
POLICY_RESOURCES = {"backuppolicies", "backuppolicies/status", "scalingpolicies", "scalingpolicies/status"}


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
    """Peak RSS of a process and its children, sampled every 100 ms; the children are looked up once a second.

    Why not every sample: listing a process' children reads every process' stat in /proc, and this thread runs in
    the emulated API server's process — looked up every 100 ms it took ~6 % of that process' CPU during a
    1,000-policy crossing (py-spy), time the emulated API then lacked."""

    CHILDREN_EVERY = 10  # samples

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.cpu = 0.0  # user + system seconds of the process tree, at the last sample
        self.stop = threading.Event()

    def run(self) -> None:
        procs = [self.process]
        for sample in range(sys.maxsize):
            if self.stop.is_set():
                return
            try:
                if sample % self.CHILDREN_EVERY == 0:
                    procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
                self.cpu = sum(sum(p.cpu_times()[:2]) for p in procs)
            except psutil.Error:
                procs = [self.process]
            self.stop.wait(0.1)


@contextmanager
def operator_process(cluster: EmulatedCluster, command: list[str], env: dict[str, str]
                     ) -> Iterator[tuple[subprocess.Popen[bytes], RssSampler, Path]]:
    """The operator as a subprocess on `cluster`, with its RSS/CPU sampler and its log file; stopped on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
        log = Path(tmp) / "log"
        process = subprocess.Popen(command, env={**os.environ, **env, "KUBECONFIG": str(kubeconfig)},
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        sampler = RssSampler(process.pid)
        sampler.start()
        try:
            yield process, sampler, log
        finally:
            sampler.stop.set()
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def run_one(name: str, command: list[str], env: dict[str, str], args: argparse.Namespace) -> Result:
    cluster = EmulatedCluster(pod_ready_delay=0.05, history_size=max(50_000, args.incidents * 60)).start()
    tracker = Tracker(floor_mode=name == "floor")
    try:
        cluster.install_crds(REPO / "crds")
        names = populate(cluster, args.namespaces, args.policies)
        with operator_process(cluster, command, env) as (process, sampler, log):
            time.sleep(args.warmup)  # startup, initial lists, the policies' first passes
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
        delta = {k: end_requests.get(k, 0) - start_requests.get(k, 0) for k in end_requests}
        by_verb: dict[str, int] = {}
        for (verb, resource), count in delta.items():
            if count:
                label = f"{verb} {resource}"
                by_verb[label] = by_verb.get(label, 0) + count
        latencies = sorted(tracker.first_step[k] - tracker.created[k] for k in tracker.first_step
                           if k in tracker.created)
        own = sum(n for (_, resource), n in delta.items() if resource not in POLICY_RESOURCES)
        policy_rate = sum(n for (_, resource), n in delta.items() if resource in POLICY_RESOURCES) / max(elapsed, 1e-9)
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


# -- idle cost ---------------------------------------------------------------------------------

@dataclass
class IdleResult:
    name: str
    policies: int
    settled_seconds: float
    requests_per_second: float
    cpu_percent: float
    requests_by_verb: dict[str, int]


def _has_status(cluster: EmulatedCluster, kind: str) -> int:
    return sum(1 for item in cluster.list(API, kind) if (item.get("status") or {}).get("observedGeneration"))


def run_idle(name: str, command: list[str], env: dict[str, str], args: argparse.Namespace) -> IdleResult:
    """N paused ScalingPolicies + N suspended BackupPolicies, no incidents: what does the operator cost?"""
    cluster = EmulatedCluster(pod_ready_delay=0.05, history_size=max(50_000, args.idle_policies * 20)).start()
    try:
        cluster.install_crds(REPO / "crds")
        populate(cluster, args.namespaces, args.idle_policies)
        with operator_process(cluster, command, env) as (process, sampler, log):
            started = time.monotonic()
            deadline = started + args.timeout
            while cluster.stats.total("watch", "tradesenseincidents") == 0:  # both operators watch incidents
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            if name != "floor":  # the floor writes no policy status
                while (_has_status(cluster, "ScalingPolicy") < args.idle_policies
                       or _has_status(cluster, "BackupPolicy") < args.idle_policies):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name}: policies did not settle: {log.read_text()[-2000:]}")
                    time.sleep(0.5)
            # settled: every policy has a status and the API saw at most one request in 5 s (kopf's finalizer
            # patches and the last passes trail the statuses on a loaded machine)
            quiet_since, last_total = time.monotonic(), cluster.stats.total()
            while time.monotonic() - quiet_since < 5.0 and time.monotonic() < deadline:
                time.sleep(0.5)
                total = cluster.stats.total()
                if total - last_total > 1:
                    quiet_since = time.monotonic()
                last_total = total
            settled = time.monotonic() - started
            before, cpu_before = cluster.stats.snapshot(), sampler.cpu
            with _sampling_profile(process.pid, args.idle_window, args.idle_profile if name != "floor" else None):
                time.sleep(args.idle_window)
            after, cpu_after = cluster.stats.snapshot(), sampler.cpu
        delta = {f"{verb} {resource}": n - before.get((verb, resource), 0) for (verb, resource), n in after.items()
                 if n != before.get((verb, resource), 0)}
        return IdleResult(name=name, policies=args.idle_policies, settled_seconds=round(settled, 1),
                          requests_per_second=round(sum(delta.values()) / args.idle_window, 2),
                          cpu_percent=round(100 * (cpu_after - cpu_before) / args.idle_window, 2),
                          requests_by_verb=delta)
    finally:
        cluster.stop()


@contextmanager
def _sampling_profile(pid: int, seconds: float, out: Path | None) -> Iterator[None]:
    """py-spy (a sampling profiler, installed separately) on the operator for exactly the idle window: what runs
    when nothing is due. Raw collapsed stacks, one line per stack with its sample count."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "--format",
                            "raw", "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.wait(timeout=seconds + 30)


# -- active scaling ----------------------------------------------------------------------------

@dataclass
class ActiveResult:
    policies: int
    interval_seconds: int
    scaled: int
    p50_latency: float
    p90_latency: float
    max_latency: float
    queries_per_round: float
    requests_per_second: float
    cpu_percent: float
    requests_by_verb: dict[str, int] = field(default_factory=dict)
    """Requests in the steady window (before the crossing), by verb and resource."""
    crossing_requests_per_second: float = 0.0
    """What the emulated API served from the crossing until the last policy's replicas changed."""
    crossing_requests_by_verb: dict[str, int] = field(default_factory=dict)
    crossing_cpu_seconds: float = 0.0
    """CPU of the operator from the crossing until the last policy's replicas changed (moves less with the
    machine's load than the latencies do)."""
    crossing_api_cpu_seconds: float = 0.0
    """CPU of this process (the emulated API server, and the benchmark's own threads) over the same time."""


class Gauge:
    """`bench_load <value>` served on loopback for Prometheus to scrape every second."""

    def __init__(self, value: float) -> None:
        self.value = value
        gauge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE bench_load gauge\nbench_load {gauge.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ACTIVE_QUERY = "max(bench_load)"
ACTIVE_TARGET = 100.0  # per replica: below → 1 replica, above → 2


def _prometheus_value(url: str) -> float | None:
    query = urllib.parse.urlencode({"query": ACTIVE_QUERY})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as answer:
        result = json.loads(answer.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait_for_value(url: str, accept: Callable[[float], bool], timeout: float) -> float:
    """Poll Prometheus every 0.05 s; the monotonic time at which the query's answer first satisfied `accept`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = _prometheus_value(url)
        if value is not None and accept(value):
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"Prometheus never answered {ACTIVE_QUERY} as expected")


def run_active(command: list[str], env: dict[str, str], args: argparse.Namespace, policies: int) -> ActiveResult:
    """`policies` ScalingPolicies on one Prometheus query: latency from the crossing to replicas patched."""
    cluster = EmulatedCluster(pod_ready_delay=None, history_size=max(50_000, policies * 40)).start()
    gauge = Gauge(ACTIVE_TARGET / 2)
    prometheus = PrometheusServer([gauge.target], query_log=True).start()
    scaled: dict[str, float] = {}
    lock = threading.Lock()

    def listen(rtype: Any, event_type: str, obj: dict[str, Any], _old: Any) -> None:
        if rtype.kind == "Deployment" and event_type == "MODIFIED" and (obj.get("spec") or {}).get("replicas", 1) > 1:
            with lock:
                scaled.setdefault(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}", time.monotonic())

    try:
        cluster.install_crds(REPO / "crds")
        names = [f"active-{i:02d}" for i in range(min(args.namespaces, policies))]
        for ns in names:
            cluster.create_namespace(ns)
        for i in range(policies):
            ns, name = names[i % len(names)], f"app-{i}"
            cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                     "template": {"metadata": {"labels": {"app": name}},
                                                  "spec": {"containers": [{"name": "b", "image": "b:1"}]}}}})
            cluster.create({"apiVersion": API, "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": ns},
                            "spec": {"targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 2,
                                     "pollingIntervalSeconds": args.active_interval, "prometheusUrl": prometheus.url,
                                     "metrics": [{"name": "load", "query": ACTIVE_QUERY,
                                                  "target": {"type": "AverageValue", "value": ACTIVE_TARGET}}]}})
        prometheus.wait_for_target_up(gauge.target, timeout=30)
        with operator_process(cluster, command, env) as (process, sampler, log):
            deadline = time.monotonic() + args.timeout
            while _has_status(cluster, "ScalingPolicy") < policies:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"policies were not evaluated: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            time.sleep(2 * args.active_interval)  # steady rounds
            queries_before, requests_before = len(prometheus.logged_queries()), cluster.stats.snapshot()
            cpu_before, window_start = sampler.cpu, time.monotonic()
            time.sleep(max(10.0, 3 * args.active_interval))
            queries = len(prometheus.logged_queries()) - queries_before
            requests = {k: n - requests_before.get(k, 0) for k, n in cluster.stats.snapshot().items()}
            window = time.monotonic() - window_start
            cpu = sampler.cpu - cpu_before
            cluster.store.add_listener(listen)
            gauge.value = ACTIVE_TARGET * 3
            crossed = _wait_for_value(prometheus.url, lambda v: v > ACTIVE_TARGET * 2, timeout=60)
            at_crossing, cpu_at_crossing, api_cpu_at_crossing = cluster.stats.snapshot(), sampler.cpu, time.process_time()
            while len(scaled) < policies and time.monotonic() < crossed + args.timeout:
                time.sleep(0.1)
            crossing = {k: n - at_crossing.get(k, 0) for k, n in cluster.stats.snapshot().items()}
            crossing_seconds = max(scaled.values(), default=crossed) - crossed
            crossing_api_cpu = time.process_time() - api_cpu_at_crossing
            time.sleep(0.1)  # the sampler's next reading
            crossing_cpu = sampler.cpu - cpu_at_crossing
        # every policy is due once per interval (the operator evaluates all due policies in one round), and a
        # status is no longer written each round, so rounds are counted by the clock
        rounds = window / args.active_interval
        latencies = sorted(max(0.0, t - crossed) for t in scaled.values())
        return ActiveResult(
            policies=policies, interval_seconds=args.active_interval, scaled=len(scaled),
            p50_latency=round(_quantile(latencies, 0.5), 2), p90_latency=round(_quantile(latencies, 0.9), 2),
            max_latency=round(max(latencies, default=float("nan")), 2),
            queries_per_round=round(queries / max(rounds, 1e-9), 2),
            requests_per_second=round(sum(requests.values()) / window, 1), cpu_percent=round(100 * cpu / window, 1),
            requests_by_verb={f"{verb} {resource}": n for (verb, resource), n in requests.items() if n},
            crossing_requests_per_second=round(sum(crossing.values()) / max(crossing_seconds, 1e-9), 1),
            crossing_requests_by_verb={f"{verb} {resource}": n for (verb, resource), n in crossing.items() if n},
            crossing_cpu_seconds=round(crossing_cpu, 2), crossing_api_cpu_seconds=round(crossing_api_cpu, 2))
    finally:
        prometheus.stop()
        gauge.close()
        cluster.stop()


def _free_port() -> int:
    """A free loopback port for the operator's liveness endpoint (kopf reads port 0 as 80, which collides with
    any other operator on the machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def _ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.1f}x" if floor else "—"


def print_table(incidents: list[Result], idle: list[IdleResult], active: list[ActiveResult]) -> None:
    """Every figure of issue 14's table with its ratio to the floor measured in this run."""
    rows: list[tuple[str, str, str, str]] = []
    by_name = {r.name: r for r in incidents}
    ours, floor = by_name.get("tradesense"), by_name.get("floor")
    if ours is not None and floor is not None:
        for label, a, b, unit in [
            ("all terminal", ours.seconds_to_all_terminal, floor.seconds_to_all_terminal, " s"),
            ("creation → first step p50", ours.p50_first_step, floor.p50_first_step, " s"),
            ("creation → first step p99", ours.p99_first_step, floor.p99_first_step, " s"),
            ("CPU per incident", ours.cpu_ms_per_incident, floor.cpu_ms_per_incident, " ms"),
            ("API requests per incident", ours.requests_per_incident, floor.requests_per_incident, ""),
            ("peak RSS", ours.peak_rss_mb, floor.peak_rss_mb, " MB"),
        ]:
            rows.append((label, f"{a}{unit}", f"{b}{unit}", _ratio(a, b)))
    idle_by = {r.name: r for r in idle}
    if "tradesense" in idle_by and "floor" in idle_by:
        a_idle, b_idle = idle_by["tradesense"], idle_by["floor"]
        what = f"({a_idle.policies} paused + {a_idle.policies} suspended policies, no incidents)"
        rows.append((f"requests/s while idle {what}", f"{a_idle.requests_per_second}",
                     f"{b_idle.requests_per_second}", _ratio(a_idle.requests_per_second, b_idle.requests_per_second)))
        rows.append(("CPU while idle", f"{a_idle.cpu_percent} %", f"{b_idle.cpu_percent} %",
                     _ratio(a_idle.cpu_percent, b_idle.cpu_percent)))
    if len(active) == 2:
        one, many = active
        label = f"active scaling: crossing → replicas patched, median ({many.policies} policies; baseline: {one.policies})"
        rows.append((label, f"{many.p50_latency} s", f"{one.p50_latency} s", _ratio(many.p50_latency, one.p50_latency)))
        rows.append((f"active scaling: p90 / max ({many.scaled}/{many.policies} scaled)",
                     f"{many.p90_latency} / {many.max_latency} s", f"{one.p90_latency} / {one.max_latency} s", ""))
        rows.append(("active scaling: Prometheus queries per evaluation round", f"{many.queries_per_round}",
                     f"{one.queries_per_round}", _ratio(many.queries_per_round, one.queries_per_round)))
        rows.append(("active scaling: API requests/s, operator CPU", f"{many.requests_per_second}, {many.cpu_percent} %",
                     f"{one.requests_per_second}, {one.cpu_percent} %", ""))
    print("| figure | tradesense | floor | ratio |\n|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--policies", type=int, default=100, help="BackupPolicies and ScalingPolicies, each")
    parser.add_argument("--step-poll", type=float, default=0.5, help="TSO_STEP_POLL_SECONDS of the operator")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--only", choices=["tradesense", "floor"], default=None)
    parser.add_argument("--idle-policies", type=int, default=1000, help="paused + suspended policies, each; 0 skips")
    parser.add_argument("--idle-window", type=float, default=30.0, help="seconds over which idle requests are counted")
    parser.add_argument("--idle-profile", type=Path, default=None,
                        help="py-spy the operator during the idle window, raw collapsed stacks here (needs py-spy)")
    parser.add_argument("--active-policies", type=int, default=1000, help="active ScalingPolicies; 0 skips")
    parser.add_argument("--active-interval", type=int, default=1, help="their pollingIntervalSeconds")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None,
                        help="run tradesense-operator under cProfile and write its stats here (pstats format)")
    args = parser.parse_args(argv)
    # The emulated API server runs in this process. With CPython's default GC thresholds its full collections
    # (tens of thousands of stored objects and watch-history snapshots) stopped it for 0.2-0.5 s, several times
    # per 1,000-policy crossing, which a real API server (Go, concurrent GC) does not do: the same settings as
    # the operator process, so the figures measure the operator.
    tune_gc()
    profiler = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
    ours_command = [sys.executable, *profiler, "-m", "tradesense_operator", "run", "--standalone",
                    f"--liveness=http://127.0.0.1:{_free_port()}/healthz"]
    ours_env = {"TSO_HTTP_PORT": "0", "TSO_STEP_POLL_SECONDS": str(args.step_poll), "TSO_LOG_LEVEL": "WARNING",
                "TSO_LOCK_LEASE_SECONDS": "15"}
    floor_command = [sys.executable, str(REPO / "bench" / "floor" / "minimal_operator.py")]
    commands = {"tradesense": (ours_command, ours_env), "floor": (floor_command, {})}
    chosen = [name for name in commands if args.only in (None, name)]

    results: list[Result] = []
    if args.incidents:
        results = [run_one(name, *commands[name], args) for name in chosen]
        print(f"scale: {args.incidents} incidents in {args.namespaces} namespaces, {args.policies} BackupPolicies "
              f"(suspended) + {args.policies} ScalingPolicies (paused); step poll {args.step_poll}s")
        print(f"{'':12}{'terminal':>10}{'all done s':>12}{'p50 s':>9}{'p99 s':>9}{'RSS MB':>9}{'cpu ms/inc':>11}"
              f"{'req/inc':>9}{'idle req/s':>11}{'policy req/s':>13}")
        for r in results:
            print(f"{r.name:12}{r.terminal:>10}{r.seconds_to_all_terminal:>12}{r.p50_first_step:>9}"
                  f"{r.p99_first_step:>9}{r.peak_rss_mb:>9}{r.cpu_ms_per_incident:>11}{r.requests_per_incident:>9}"
                  f"{r.background_requests_per_second:>11}{r.policy_requests_per_second:>13}")
        for r in results:
            print(f"{r.name} phases {r.phases}; top requests {r.requests_by_verb}")
    idle: list[IdleResult] = []
    if args.idle_policies:
        idle = [run_idle(name, *commands[name], args) for name in chosen]
        for i in idle:
            print(f"idle {i.name}: {i.policies} + {i.policies} policies settled in {i.settled_seconds} s; "
                  f"{i.requests_per_second} requests/s, CPU {i.cpu_percent} % over {args.idle_window:g} s; "
                  f"{i.requests_by_verb}")
    active: list[ActiveResult] = []
    if args.active_policies and args.only in (None, "tradesense"):
        active = [run_active(ours_command, ours_env, args, n) for n in (1, args.active_policies)]
        for a in active:
            print(f"active {a.policies} policies (interval {a.interval_seconds} s): {a.scaled} scaled; latency "
                  f"p50 {a.p50_latency} s, p90 {a.p90_latency} s, max {a.max_latency} s; "
                  f"{a.queries_per_round} Prometheus queries per round; {a.requests_per_second} requests/s; "
                  f"CPU {a.cpu_percent} %; steady-window requests {a.requests_by_verb}; from the crossing to the last "
                  f"scale {a.crossing_requests_per_second} requests/s: {a.crossing_requests_by_verb}, CPU of the "
                  f"operator {a.crossing_cpu_seconds} s and of the emulated API {a.crossing_api_cpu_seconds} s")
    print()
    print_table(results, idle, active)
    if args.json:
        args.json.write_text(json.dumps({"incidents": [asdict(r) for r in results], "idle": [asdict(i) for i in idle],
                                         "active": [asdict(a) for a in active]}, indent=2), encoding="utf-8")
    ok = all(r.terminal == r.incidents for r in results) and all(a.scaled == a.policies for a in active)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
