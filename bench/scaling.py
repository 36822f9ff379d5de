"""ScalingPolicy benchmark: a trading day replayed through the decision function, and live reaction time.

Part 1 (pure, deterministic): a recorded-shape NYSE trading day — quiet pre-market, a spike at the 09:30
open, a lunch lull, a spike into the 16:00 close — is replayed every 15 s through `domain.scaling.decide`
for two configurations on identical inputs:
  * "policy": this operator's ScalingPolicy — request rate per replica, plus two schedule windows in New
    York time that pre-warm for the known spikes: minReplicas 12 from 09:25 to 10:00, 10 from 15:40 to 16:05;
  * "hpa": the plain HPA equivalent — same metric, target and bounds, HPA default behavior, no schedule.
Printed per configuration: replica-minutes (cost), minutes under-provisioned (load above what the ready
replicas serve) and the number of scale events. A PNG of load and replicas is saved in bench/out/.

The model: each replica serves CAPACITY req/s; the autoscaler sees a 1-minute rate (Prometheus'
`rate(...[1m])`), and a new replica serves only after POD_START seconds (image pull + readiness).

Part 2 (live): the real operator (kopf, in-process) against the emulated API server, with a real
Prometheus scraping the stand-in app every second. The offered load steps up; we time from the moment
Prometheus' answer to the policy's query first exceeds the target to the moment the Deployment's
replicas change, next to the HPA's 15 s sync period and KEDA's 30 s default polling interval.

Run: `.venv/bin/python bench/scaling.py [--skip-live] [--trials 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicySpec
from tradesense_operator.domain.scaling.decision import ScalingDecision, ScalingInput, decide
from tradesense_operator.domain.scaling.metrics import MetricReading

OUT = Path(__file__).resolve().parent / "out"
CRDS = Path(__file__).resolve().parents[1] / "crds"
NEW_YORK = ZoneInfo("America/New_York")
DAY = datetime(2026, 1, 6, tzinfo=NEW_YORK)        # a Tuesday
STEP = 15                                           # seconds between evaluations (the HPA's sync period)
CAPACITY = 50.0                                     # req/s one ready replica serves
TARGET = 40.0                                       # req/s per replica the autoscalers aim for (80 %)
POD_START = 90                                      # seconds before a new replica serves (schedule, pull, warm-up)
RATE_WINDOW = 60                                    # the metric is a 1-minute rate
HPA_SYNC_PERIOD = 15.0
KEDA_POLLING_INTERVAL = 30.0

BASE_SPEC: dict[str, Any] = {
    "targetRef": {"name": "backend"}, "minReplicas": 3, "maxReplicas": 20, "pollingIntervalSeconds": STEP,
    "metrics": [{"name": "rps", "preset": "request-rate", "target": {"type": "AverageValue", "value": TARGET}}],
}
CONFIGS: dict[str, ScalingPolicySpec] = {
    "policy": ScalingPolicySpec.model_validate({**BASE_SPEC, "schedules": [
        {"name": "open", "start": "25 9 * * 1-5", "end": "0 10 * * 1-5", "timeZone": "America/New_York",
         "minReplicas": 12},
        {"name": "close", "start": "40 15 * * 1-5", "end": "5 16 * * 1-5", "timeZone": "America/New_York",
         "minReplicas": 10}]}),
    "hpa": ScalingPolicySpec.model_validate(BASE_SPEC),
}


# -- part 1: the trading day --------------------------------------------------------------------

def _bump(t: float, centre: float, width: float) -> float:
    return math.exp(-(((t - centre) / width) ** 2))


def trading_day_load(start_hour: float = 8.0, end_hour: float = 18.0, seed: int = 7) -> list[tuple[datetime, float]]:
    """Offered load (req/s) every STEP seconds; deterministic (seeded noise)."""
    rng = random.Random(seed)
    points: list[tuple[datetime, float]] = []
    t = start_hour * 3600
    while t <= end_hour * 3600:
        h = t / 3600
        base = 25.0
        if 9.5 <= h < 16.0:
            base = 160.0 - 90.0 * _bump(h, 12.75, 0.75)               # session level, lunch lull around 12:45
            base += 380.0 * math.exp(-(h - 9.5) / 0.35)                # the open: sharp spike, decays in ~20 min
            base += 300.0 * _bump(h, 15.85, 0.22)                      # into the close
        elif 9.0 <= h < 9.5:
            base = 25.0 + 60.0 * (h - 9.0) / 0.5                       # pre-market pick-up
        elif 16.0 <= h < 16.5:
            base = 25.0 + 200.0 * math.exp(-(h - 16.0) / 0.08)         # after the bell
        load = max(0.0, base * (1 + rng.uniform(-0.06, 0.06)))
        points.append((DAY + timedelta(seconds=t), load))
        t += STEP
    return points


@dataclass
class DayResult:
    """One configuration's day."""

    name: str
    replicas: list[int] = field(default_factory=list)
    replica_minutes: float = 0.0
    underprovisioned_minutes: float = 0.0
    scale_events: int = 0


def replay(name: str, spec: ScalingPolicySpec, trace: Sequence[tuple[datetime, float]]) -> DayResult:
    """Run the decision function over the trace; the Deployment follows its decisions instantly, pods serve later."""
    result = DayResult(name)
    current = spec.min_replicas
    started: list[tuple[datetime, int]] = []           # (evaluation time, replica count after it)
    prior: ScalingDecision | None = None
    window = RATE_WINDOW // STEP
    for i, (when, load) in enumerate(trace):
        seen = statistics.fmean(v for _, v in trace[max(0, i - window + 1): i + 1])   # rate(...[1m])
        decision = decide(ScalingInput(
            spec=spec, current_replicas=current, readings={"rps": MetricReading(seen)}, now=when.astimezone(UTC),
            recommendations=prior.recommendations if prior else (), scale_events=prior.scale_events if prior else (),
        ))
        prior = decision
        if decision.changed:
            result.scale_events += 1
            current = decision.desired_replicas
        started.append((when, current))
        # Ready replicas: removals act at once, additions only POD_START seconds after they were asked for.
        cutoff = when - timedelta(seconds=POD_START)
        earlier = [c for t, c in started if t <= cutoff]
        ready = min(current, earlier[-1] if earlier else spec.min_replicas)
        result.replicas.append(current)
        result.replica_minutes += current * STEP / 60
        if load > ready * CAPACITY:
            result.underprovisioned_minutes += STEP / 60
    return result


def plot(trace: Sequence[tuple[datetime, float]], results: Sequence[DayResult], path: Path) -> None:
    """Load and replicas over the day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [t.replace(tzinfo=None) for t, _ in trace]
    fig, load_axis = plt.subplots(figsize=(12, 5))
    load_axis.plot(times, [v for _, v in trace], color="0.6", linewidth=1, label="offered load (req/s)")
    load_axis.set_ylabel("req/s")
    replica_axis = load_axis.twinx()
    styles = {"policy": ("tab:blue", "-"), "hpa": ("tab:red", "--")}
    for result in results:
        colour, style = styles.get(result.name, ("k", "-"))
        replica_axis.step(times, result.replicas, where="post", color=colour, linestyle=style,
                          label=f"replicas: {result.name}")
    replica_axis.plot(times, [v / CAPACITY for _, v in trace], color="0.3", linewidth=0.6, linestyle=":",
                      label=f"replicas needed (load / {CAPACITY:g})")
    replica_axis.set_ylabel("replicas")
    load_axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    load_axis.set_xlabel("New York time")
    lines = load_axis.get_legend_handles_labels()[0] + replica_axis.get_legend_handles_labels()[0]
    labels = load_axis.get_legend_handles_labels()[1] + replica_axis.get_legend_handles_labels()[1]
    load_axis.legend(lines, labels, loc="upper right", fontsize=8)
    load_axis.set_title("Trading day: ScalingPolicy (schedule + HPA algorithm) vs plain HPA")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def trading_day() -> None:
    """Part 1."""
    trace = trading_day_load()
    results = [replay(name, spec, trace) for name, spec in CONFIGS.items()]
    print(f"Trading day {DAY:%Y-%m-%d} 08:00–18:00 New York, evaluations every {STEP} s, "
          f"{CAPACITY:g} req/s per ready replica, target {TARGET:g} req/s per replica, pods serve after {POD_START} s")
    print(f"{'configuration':<14}{'replica-minutes':>17}{'under-provisioned':>20}{'scale events':>15}")
    for r in results:
        print(f"{r.name:<14}{r.replica_minutes:>17.0f}{r.underprovisioned_minutes:>17.1f} min{r.scale_events:>15}")
    policy, hpa = results
    print(f"policy vs hpa: replica-minutes ×{policy.replica_minutes / hpa.replica_minutes:.2f}, "
          f"under-provisioned {policy.underprovisioned_minutes:.1f} vs {hpa.underprovisioned_minutes:.1f} min")
    path = OUT / "scaling-trading-day.png"
    plot(trace, results, path)
    print(f"plot: {path}")


# -- part 2: live reaction time -----------------------------------------------------------------

def _scaling_registry(kubeconfig: Path) -> Any:
    """A kopf registry with the real scaling handlers and a Runtime built inside the operator's loop."""
    from tradesense_operator.domain.clock import SystemClock
    from tradesense_operator.handlers import scaling as scaling_handlers
    from tradesense_sandbox.runner import handlers_registry

    return handlers_registry(kubeconfig, SystemClock(), scaling_handlers.register)


async def _live(trials: int) -> list[float]:
    from tradesense_operator.api.v1alpha1.scaling import MetricPreset
    from tradesense_operator.clients.prometheus import PrometheusClient
    from tradesense_operator.domain.scaling.presets import preset_query
    from tradesense_sandbox.app import BackgroundLoad, StandinApp
    from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
    from tradesense_sandbox.runner import run_operator
    from tradesense_sandbox.servers.prometheus import PrometheusServer

    namespace, target, selector, window = "tradesense", 10.0, 'path!="/metrics"', "5s"
    query = preset_query(MetricPreset.REQUEST_RATE_PER_REPLICA, window=window, selector=selector)
    latencies: list[float] = []
    phase = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp, EmulatedCluster(pod_ready_delay=None) as cluster, \
            StandinApp() as app, PrometheusServer([app.target]) as prometheus:
        cluster.install_crds(CRDS)
        cluster.create_namespace(namespace)
        kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig", namespace)
        prometheus.wait_for_target_up(app.target)
        registry = _scaling_registry(kubeconfig)
        client = PrometheusClient(prometheus.url, timeout=3)
        try:
            with run_operator(cluster, registry=registry, namespaces=[namespace]):
                async with BackgroundLoad(app.base_url, rate=4, max_duration=600) as load:
                    for trial in range(trials):
                        name = f"latency-{trial}"
                        load.set_rate(4)
                        await _wait_value(client, query, lambda v: v < target * 0.8)
                        # The daemon starts when the policy appears; right after a scrape-driven wait its evaluations
                        # would be phase-locked just behind Prometheus' scrapes. A random offset samples every phase.
                        await asyncio.sleep(phase.uniform(0.0, 1.0))
                        cluster.create({"apiVersion": "apps/v1", "kind": "Deployment",
                                        "metadata": {"name": name, "namespace": namespace},
                                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                                 "template": {"metadata": {"labels": {"app": name}},
                                                              "spec": {"containers": [{"name": "b", "image": "b"}]}}}})
                        cluster.create({"apiVersion": "ops.tradesense.io/v1alpha1", "kind": "ScalingPolicy",
                                        "metadata": {"name": name, "namespace": namespace},
                                        "spec": {"targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10,
                                                 "pollingIntervalSeconds": 1, "prometheusUrl": prometheus.url,
                                                 "metrics": [{"name": "rps", "preset": "request-rate",
                                                              "window": window, "selector": selector,
                                                              "target": {"type": "AverageValue", "value": target}}]}})
                        await _wait(lambda n=name: _status(cluster, namespace, n) is not None)
                        load.set_rate(30)
                        crossed = await _wait_value(client, query, lambda v: v > target * 1.1)   # beyond tolerance
                        await _wait(lambda n=name: _replicas(cluster, namespace, n) > 1)
                        changed = time.monotonic()
                        latencies.append(changed - crossed)
                        cluster.delete("ops.tradesense.io/v1alpha1", "ScalingPolicy", name, namespace)
        finally:
            client.close()
    return latencies


def _replicas(cluster: Any, namespace: str, name: str) -> int:
    return int(cluster.get("apps/v1", "Deployment", name, namespace)["spec"]["replicas"])


def _status(cluster: Any, namespace: str, name: str) -> Any:
    return (cluster.get("ops.tradesense.io/v1alpha1", "ScalingPolicy", name, namespace).get("status") or {}).get(
        "lastEvaluationTime")


async def _wait(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def _wait_value(client: Any, query: str, accept: Any, timeout: float = 60.0) -> float:
    """Poll Prometheus every 0.1 s; return the monotonic time at which `accept(value)` first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await client.instant(query)
        if result.value is not None and accept(result.value):
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{query} never satisfied the condition")


def live(trials: int) -> None:
    """Part 2."""
    latencies = asyncio.run(_live(trials))
    print(f"\nLive: metric above target in Prometheus → Deployment replicas changed "
          f"(real operator, pollingIntervalSeconds 1, evaluated when due, 1 s scrape), {trials} trials")
    print(f"  median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
          f"(each: {', '.join(f'{v:.2f}' for v in latencies)})")
    print("  bound: pollingIntervalSeconds + one query ≈ 1 s; "
          "Prometheus itself adds up to one scrape interval (1 s) before the crossing is visible to anyone")
    print(f"  HPA sync period {HPA_SYNC_PERIOD:g} s (mean wait {HPA_SYNC_PERIOD / 2:g} s); "
          f"KEDA default pollingInterval {KEDA_POLLING_INTERVAL:g} s (mean wait {KEDA_POLLING_INTERVAL / 2:g} s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--skip-live", action="store_true", help="only the trading-day replay (no Prometheus needed)")
    parser.add_argument("--trials", type=int, default=5, help="live reaction-time trials")
    args = parser.parse_args(argv)
    trading_day()
    if not args.skip_live:
        if not Path("/usr/bin/prometheus").exists():
            print("\nLive part skipped: /usr/bin/prometheus not installed")
        else:
            live(args.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
