"""Secret values never reach Kubernetes Events through kopf's own log-to-Event posting.

kopf can turn its per-object log records (logger `kopf.objects`, e.g. "Handler 'x' failed permanently: <the
exception text>") into Events with its own logging handler, which never passes through the operator's log
handler and its redacting filter. kopf 1.45 does so only with `settings.posting.loggers` (off by default and in
our startup), so this is defence in depth: `configure_logging` also filters that logger itself, and the test
turns the posting on, runs the real operator with a handler whose error quotes a registered secret, and lets
the secret guard scan every Event (and log record) of the namespace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import pytest

from tests.support.secrets import SecretGuard
from tradesense_operator.observability.logs import configure_logging
from tradesense_operator.observability.redaction import MASK, SECRETS
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle, default_settings


@pytest.fixture
def production_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(log_format="json", level="INFO")
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_a_secret_in_a_handler_error_is_masked_in_the_event_kopf_posts(
    production_logging: None,
    kube_cluster: EmulatedCluster,
    test_namespace: str,
    operator_factory: Callable[..., OperatorHandle],
    secret_guard: SecretGuard,
) -> None:
    password = secret_guard.plant()
    SECRETS.register(password)  # as the operator does for every value it reads from a Secret
    secret_guard.add_source("Events", lambda: json.dumps(kube_cluster.events(test_namespace)))
    registry = kopf.OperatorRegistry()

    @kopf.on.create("v1", "configmaps", registry=registry)
    async def leaky(**_: Any) -> None:
        raise kopf.PermanentError(f"could not connect with password={password}")

    settings = default_settings()
    settings.posting.loggers = True  # off by default in kopf 1.45 and in our startup; on here to test the path
    operator_factory(registry=registry, namespaces=[test_namespace], settings=settings)
    kube_cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "trigger", "namespace": test_namespace}, "data": {}})

    deadline = time.monotonic() + 20
    while not (posted := [e for e in kube_cluster.events(test_namespace) if "failed permanently" in e["message"]]):
        assert time.monotonic() < deadline, "kopf posted no Event about the failed handler"
        await asyncio.sleep(0.05)
    assert f"password={MASK}" in posted[0]["message"]
