"""A real Prometheus (the Debian package) on a free loopback port, scraping what the test says.

Scrape and evaluation intervals default to 1 s so a rate() or an alert rule turns over within seconds.
The scrape targets can change while it runs (`set_targets` rewrites the config and reloads it), which is
how a test points Prometheus at an app it started afterwards.

Must not talk to the shared services or to a Prometheus it did not start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tradesense_sandbox.servers.probes import http_json
from tradesense_sandbox.servers.prometheus_project import PrometheusProjectServer


class PrometheusServer(PrometheusProjectServer):
    """`prometheus` with a generated config: static scrape targets, optional rules and Alertmanagers."""

    name = "prometheus"
    storage_flag = "--storage.tsdb.path"
    extra_flags = ("--web.enable-lifecycle", "--storage.tsdb.retention.time=1d")

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: Sequence[str | Path] = (),
        alertmanagers: Sequence[str] = (),
        job_name: str = "tradesense",
        target_labels: Mapping[str, Mapping[str, str]] | None = None,
        metrics_path: str = "/metrics",
        external_labels: dict[str, str] | None = None,
        binary: str = "/usr/bin/prometheus",
        port: int | None = None,
        startup_timeout: float = 30.0,
        query_log: bool = False,
    ) -> None:
        self.query_log = query_log
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = [Path(p) for p in rule_files]
        self.alertmanagers = list(alertmanagers)
        self.job_name = job_name
        # Labels per target, as Kubernetes service discovery would attach them (e.g. {"host:port": {"namespace": "a"}}).
        self.target_labels = {target: dict(labels) for target, labels in (target_labels or {}).items()}
        self.metrics_path = metrics_path
        self.external_labels = dict(external_labels or {})
        super().__init__(binary, "prometheus", port=port, startup_timeout=startup_timeout)

    @property
    def query_log_path(self) -> Path:
        """Where Prometheus logs every query it evaluates (with `query_log=True`)."""
        return self.workdir / "queries.log"

    def logged_queries(self) -> list[str]:
        """The PromQL of every query evaluated so far, oldest first (needs `query_log=True`)."""
        if not self.query_log_path.exists():
            return []
        lines = self.query_log_path.read_text(encoding="utf-8").splitlines()
        return [str(json.loads(line)["params"]["query"]) for line in lines if line.strip()]

    def config(self) -> dict[str, Any]:
        """The configuration as data (written to `config_path`)."""
        rules_dir = self.workdir / "rules"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
                "external_labels": self.external_labels,
            },
            "scrape_configs": [
                {
                    "job_name": self.job_name,
                    "metrics_path": self.metrics_path,
                    "static_configs": self._static_configs(),
                }
            ],
            "rule_files": [str(rules_dir / f"{i:02d}-{p.name}") for i, p in enumerate(self.rule_files)],
        }
        if self.query_log:
            config["global"]["query_log_file"] = str(self.query_log_path)
        if self.alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return config

    def _static_configs(self) -> list[dict[str, Any]]:
        plain = [t for t in self.targets if t not in self.target_labels]
        configs: list[dict[str, Any]] = [{"targets": plain}] if plain or not self.target_labels else []
        for target in self.targets:
            if target in self.target_labels:
                configs.append({"targets": [target], "labels": self.target_labels[target]})
        return configs

    def write_config(self) -> None:
        # Rule files are copied in, so a test may delete or rewrite its originals while Prometheus runs.
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for i, path in enumerate(self.rule_files):
            shutil.copyfile(path, rules_dir / f"{i:02d}-{path.name}")
        super().write_config()

    # -- reconfiguration -----------------------------------------------------------------------

    def reload(self) -> None:
        """Rewrite the config from the current attributes and make the running server load it."""
        self.write_config()
        if self.running:
            http_json(f"{self.url}/-/reload", method="POST", timeout=10)

    def set_targets(self, targets: Sequence[str]) -> None:
        """Scrape these `host:port`s from now on."""
        self.targets = list(targets)
        self.reload()

    # -- waiting -------------------------------------------------------------------------------

    def _target_health(self, payload: Any, target: str | None) -> bool:
        active = (payload or {}).get("data", {}).get("activeTargets", [])
        wanted = [t for t in active if target is None or t.get("labels", {}).get("instance") == target]
        return bool(wanted) and all(t.get("health") == "up" for t in wanted)

    def wait_for_target_up(self, target: str | None = None, *, timeout: float = 30.0) -> None:
        """Block until `target` (default: every target) has been scraped successfully.

        Blocking: do not call it from the event loop that serves the target; use the async twin there.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._target_health(http_json(f"{self.url}/api/v1/targets?state=active"), target):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"prometheus target {target or 'all'} not up within {timeout:g}s")
            time.sleep(0.1)

    async def wait_for_target_up_async(self, target: str | None = None, *, timeout: float = 30.0) -> None:
        """`wait_for_target_up` without blocking the loop (the target may be served by this loop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                try:
                    async with session.get(f"{self.url}/api/v1/targets", params={"state": "active"}) as response:
                        payload = await response.json()
                    if self._target_health(payload, target):
                        return
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                if loop.time() >= deadline:
                    raise TimeoutError(f"prometheus target {target or 'all'} not up within {timeout:g}s")
                await asyncio.sleep(0.1)

    def query_url(self, promql: str) -> str:
        """The instant-query URL for `promql` (for tests and debugging; the operator has its own client)."""
        return f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
