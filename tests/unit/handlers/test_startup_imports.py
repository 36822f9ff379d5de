"""What an operator process loads before any resource asks for it: every module costs RSS in every replica.

`bench/scale.py` compares the operator's peak RSS with a minimal kopf operator's; libraries that only some
resources need (the Prometheus client and requests, for active ScalingPolicies; cryptography's x509, for the
certificate probe) are imported by their first user, and installation settings are read without
pydantic-settings. Run in a fresh interpreter, because this test process has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

LOADED_ON_FIRST_USE = ("requests", "prometheus_api_client", "pydantic_settings", "cryptography.x509")


def test_the_handlers_load_without_the_libraries_only_some_resources_need() -> None:
    probe = ("import sys, tradesense_operator.handlers.registry, tradesense_operator.config; "
             f"print(' '.join(m for m in {LOADED_ON_FIRST_USE!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_the_prometheus_client_still_loads_its_library_when_a_policy_needs_it() -> None:
    probe = ("import sys; from tradesense_operator.clients.prometheus import PrometheusClient; "
             "client = PrometheusClient('http://127.0.0.1:1'); client.close(); "
             "print('prometheus_api_client' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
