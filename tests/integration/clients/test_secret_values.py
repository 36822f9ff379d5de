"""The one place secret values enter the operator: decoded, registered for redaction, errors without values."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from tests.support.secrets import SecretGuard
from tradesense_operator.clients.errors import Invalid, NotFound
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.clients.secret_values import read_secret_key
from tradesense_operator.observability.redaction import SECRETS, RedactingFilter
from tradesense_sandbox.kubeapi import EmulatedCluster


async def test_value_is_decoded_and_masked_in_later_log_lines(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, secret_guard: SecretGuard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = secret_guard.plant(prefix="db-password")
    kube_cluster.create({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": test_namespace},
        "data": {"password": base64.b64encode(value.encode()).decode(), "junk": "!!not-base64!!"},
        "stringData": {"plain": "string-data-value-123"},
    }, test_namespace)
    kube = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    try:
        assert await read_secret_key(kube, test_namespace, "db", "password") == value
        assert await read_secret_key(kube, test_namespace, "db", "plain") == "string-data-value-123"
        with pytest.raises(NotFound, match=r"secret .*/db has no key 'token'"):
            await read_secret_key(kube, test_namespace, "db", "token")
        with pytest.raises(NotFound, match=r"secret .*/absent not found"):
            await read_secret_key(kube, test_namespace, "absent", "password")
        with pytest.raises(Invalid, match="not valid base64") as excinfo:
            await read_secret_key(kube, test_namespace, "db", "junk")
        assert "not-base64" not in str(excinfo.value)
    finally:
        await kube.close()
    # An accident later (a library echoing a DSN) is masked by the filter the operator installs on its handler.
    record = logging.LogRecord("lib", logging.ERROR, __file__, 1, "connect failed: postgresql://u:%s@db", (value,), None)
    RedactingFilter(SECRETS).filter(record)
    assert value not in record.getMessage()
    assert "***" in record.getMessage()
