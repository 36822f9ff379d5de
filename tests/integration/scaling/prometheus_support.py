"""Starting a real Prometheus for the scaling tests, skipping cleanly when the binary is absent."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import pytest

from tradesense_sandbox.servers.prometheus import PrometheusServer

PROMETHEUS_BINARY = "/usr/bin/prometheus"


def require_prometheus() -> None:
    """Skip the calling test when the prometheus binary is not installed."""
    if shutil.which(PROMETHEUS_BINARY) is None:
        pytest.skip(f"{PROMETHEUS_BINARY} not installed (make deps installs the Debian package)")


def start_prometheus(targets: Sequence[str] = ()) -> PrometheusServer:
    """A started throwaway Prometheus scraping `targets` every second."""
    require_prometheus()
    return PrometheusServer(targets, scrape_interval="1s").start()
