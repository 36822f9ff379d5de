"""The diff base kopf builds on every watch event: ours skips copying what kopf drops, and must build the same."""

from __future__ import annotations

import copy
from typing import Any, cast

import kopf
import pytest

from tradesense_operator.handlers.startup import KOPF_STORAGE_PREFIX, StatusFreeDiffBase

BODY: dict[str, Any] = {
    "apiVersion": "ops.tradesense.io/v1alpha1",
    "kind": "TradeSenseIncident",
    "metadata": {
        "name": "inc", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
        "labels": {"team": "payments"},
        "annotations": {"ops.tradesense.io/alert-status": "firing",
                        f"{KOPF_STORAGE_PREFIX}/last-handled-configuration": "{}"},
        "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "o-1"}],
        "managedFields": [{"manager": "tradesense-operator", "subresource": "status",
                           "fieldsV1": {"f:status": {f"f:step{i}": {} for i in range(50)}}}],
    },
    "spec": {"runbook": "custom", "approvals": ["failover"]},
    "status": {"phase": "Running", "steps": [{"id": f"step{i}", "state": "Succeeded"} for i in range(50)]},
}


def _kopf_essence(extra_fields: list[str]) -> kopf.BodyEssence:
    storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration")
    return storage.build(body=kopf.Body(cast(kopf.RawBody, copy.deepcopy(BODY))), extra_fields=extra_fields)


@pytest.mark.parametrize("extra_fields", [[], ["status.phase"], ["metadata.generation"], ["spec.approvals"]])
def test_the_essence_is_kopfs_own(extra_fields: list[str]) -> None:
    ours = StatusFreeDiffBase(prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration")
    essence = ours.build(body=kopf.Body(cast(kopf.RawBody, copy.deepcopy(BODY))), extra_fields=extra_fields)
    assert essence == _kopf_essence(extra_fields)


def test_status_and_managed_fields_are_not_in_the_essence() -> None:
    ours = StatusFreeDiffBase(prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration")
    essence = ours.build(body=kopf.Body(cast(kopf.RawBody, copy.deepcopy(BODY))))
    assert essence == {"spec": BODY["spec"], "metadata": {"labels": {"team": "payments"},
                                                          "annotations": {"ops.tradesense.io/alert-status": "firing"}}}
