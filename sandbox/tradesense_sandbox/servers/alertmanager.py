"""A real Alertmanager (Debian package `prometheus-alertmanager`) routing every alert to one webhook, or
running a configuration the test supplies (e.g. the shipped routing tree with loopback addresses).

Grouping intervals are seconds instead of minutes so an alert reaches the webhook promptly in tests;
clustering is disabled (an empty `--cluster.listen-address`) so no gossip port is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tradesense_sandbox.servers.probes import http_json
from tradesense_sandbox.servers.prometheus_project import PrometheusProjectServer


class AlertmanagerServer(PrometheusProjectServer):
    """`prometheus-alertmanager` with a generated config (one route to one webhook receiver) or a given one."""

    name = "alertmanager"
    storage_flag = "--storage.path"
    extra_flags = ("--cluster.listen-address=",)

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        bearer_token: str | None = None,
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1m",
        resolve_timeout: str = "1m",
        send_resolved: bool = True,
        config: Mapping[str, Any] | None = None,
        binary: str = "/usr/bin/prometheus-alertmanager",
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.webhook_url = webhook_url
        self._bearer_token = bearer_token
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.resolve_timeout = resolve_timeout
        self.send_resolved = send_resolved
        self._config = dict(config) if config is not None else None
        super().__init__(binary, "prometheus-alertmanager", port=port, startup_timeout=startup_timeout)

    def config(self) -> dict[str, Any]:
        """The configuration as data; the bearer token is referenced by file, never inlined.

        A `config` given to the constructor is used as it is (its credentials files are the caller's).
        """
        if self._config is not None:
            return self._config
        receiver: dict[str, Any] = {"name": "webhook"}
        if self.webhook_url is not None:
            webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": self.send_resolved, "max_alerts": 0}
            if self._bearer_token is not None:
                webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(self._token_path)}}
            receiver["webhook_configs"] = [webhook]
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": "webhook",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [receiver],
        }

    @property
    def _token_path(self) -> Path:
        return self.workdir / "webhook-token"

    def prepare(self) -> None:
        if self._bearer_token is not None:
            fd = os.open(self._token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self._bearer_token)
        super().prepare()

    # -- API helpers for tests -----------------------------------------------------------------

    def post_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """POST /api/v2/alerts: inject alerts as Prometheus would (labels, annotations, startsAt/endsAt)."""
        http_json(f"{self.url}/api/v2/alerts", body=list(alerts), method="POST")

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: what Alertmanager currently holds."""
        result = http_json(f"{self.url}/api/v2/alerts")
        return list(result or [])
