"""Structured logs: JSON lines carry the incident and step; registered secret values never get out."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tradesense_operator.observability.context import log_context
from tradesense_operator.observability.logs import ContextFilter, JsonFormatter
from tradesense_operator.observability.redaction import RedactingFilter, SecretRegistry


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO, SecretRegistry]:
    stream = io.StringIO()
    registry = SecretRegistry()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(registry))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream, registry


def test_json_line_names_incident_and_step(captured: tuple[logging.Logger, io.StringIO, SecretRegistry]) -> None:
    logger, stream, _ = captured
    with log_context(obj="TradeSenseIncident tradesense/outage-1", step="restart-backend"):
        logger.info("rolling out %s", "deployment/backend")
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["object"] == "TradeSenseIncident tradesense/outage-1"
    assert first["step"] == "restart-backend"
    assert first["message"] == "rolling out deployment/backend"
    assert "object" not in second
    assert "step" not in second


def test_registered_secret_is_masked_in_message_and_traceback(
    captured: tuple[logging.Logger, io.StringIO, SecretRegistry],
) -> None:
    logger, stream, registry = captured
    secret = "s3cr3t-signing-key-value"
    registry.register(secret.encode())
    logger.warning("connecting with password=%s", secret)
    try:
        raise RuntimeError(f"auth failed for dsn postgresql://u:{secret}@db/x")
    except RuntimeError:
        logger.exception("boom")
    output = stream.getvalue()
    assert secret not in output
    assert output.count("***") >= 2


def test_short_values_are_not_registered_to_avoid_masking_words() -> None:
    registry = SecretRegistry()
    registry.register("abc")
    assert registry.redact("abc def") == "abc def"
