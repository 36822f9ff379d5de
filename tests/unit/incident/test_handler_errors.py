"""Errors cross to kopf in one place: transient → TemporaryError with a delay, invalid → PermanentError."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from tradesense_operator.clients.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.config import Settings
from tradesense_operator.domain.runbooks import PlanError
from tradesense_operator.handlers.incident import FORBIDDEN_DELAY_SECONDS, RETRY_DELAY_SECONDS, kopf_errors
from tradesense_operator.services.runtime import Runtime


def _raising(exc: Exception) -> Any:
    @kopf_errors
    async def handler(**_: Any) -> None:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("error", "delay"),
    [
        (Unavailable("API server down"), RETRY_DELAY_SECONDS),
        (Unavailable("throttled", retry_after=30.0), 30.0),
        (Conflict("stale"), RETRY_DELAY_SECONDS),
        (NotFound("gone"), RETRY_DELAY_SECONDS),
        (Forbidden("RBAC"), FORBIDDEN_DELAY_SECONDS),
    ],
)
async def test_transient_errors_become_temporary_with_a_delay(error: Exception, delay: float) -> None:
    with pytest.raises(kopf.TemporaryError) as caught:
        await _raising(error)(memo=kopf.Memo())
    assert caught.value.delay == delay
    assert str(error) in str(caught.value)


async def test_the_delay_follows_the_runtimes_poll_interval() -> None:
    runtime = Runtime(kube=KubeClient.__new__(KubeClient), settings=Settings(step_poll_seconds=0.1))
    with pytest.raises(kopf.TemporaryError) as caught:
        await _raising(Unavailable("blip"))(memo=kopf.Memo(runtime=runtime))
    assert caught.value.delay == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (PlanError("spec.parameters.backupPolicy", "required"), "invalid spec: spec.parameters.backupPolicy: required"),
        (Invalid("422 from the API server"), "422 from the API server"),
    ],
)
async def test_invalid_input_becomes_permanent(error: Exception, text: str) -> None:
    with pytest.raises(kopf.PermanentError, match=text):
        await _raising(error)(memo=kopf.Memo())
