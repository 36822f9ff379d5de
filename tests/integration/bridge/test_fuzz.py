"""Random input at /alerts over HTTP: the bridge answers 2xx or 4xx, never 5xx, and a rejected request
never leaves an incident behind.

Documented 5xx answers are not reachable here on purpose: 500 bad-mapping needs a malformed routes
ConfigMap (none exists in this namespace), 503 needs a missing token Secret or an unavailable API server
(both exist and answer), 500 api-error needs the API server to refuse a write. Those have their own tests
in test_webhook.py. The rate limit is set out of reach so that every example is judged on its content.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.integration.bridge.conftest import Bridge, alert, notification
from tradesense_operator.domain.alerts import DEFAULT_ROUTES

EXAMPLES = 120

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)

VALID = notification(alert(), alert("UnmappedAlert", fingerprint="0badc0de"))
PATHS: list[tuple[str | int, ...]] = [
    ("version",), ("groupKey",), ("status",), ("receiver",), ("alerts",), ("truncatedAlerts",), ("commonLabels",),
    ("alerts", 0), ("alerts", 0, "status"), ("alerts", 0, "labels"), ("alerts", 0, "labels", "alertname"),
    ("alerts", 0, "labels", "runbook"), ("alerts", 0, "labels", "namespace"), ("alerts", 0, "labels", "severity"),
    ("alerts", 0, "annotations"), ("alerts", 0, "startsAt"), ("alerts", 0, "endsAt"), ("alerts", 0, "fingerprint"),
    ("alerts", 0, "generatorURL"), ("alerts", 1, "labels"), ("alerts", 1, "fingerprint"),
]


def _mutate(path: tuple[str | int, ...], value: Any, delete: bool) -> dict[str, Any]:
    payload = copy.deepcopy(VALID)
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return payload


label_texts = st.text(min_size=0, max_size=300)
mutated_payloads = st.builds(_mutate, st.sampled_from(PATHS), json_values | label_texts, st.booleans())
# well-formed payloads whose labels are arbitrary text: must be sanitised or refused, never a 5xx
odd_label_payloads = st.builds(
    lambda name, labels, fp: notification(alert(name, fingerprint=fp, labels=labels)),
    label_texts,
    st.dictionaries(st.sampled_from(["namespace", "severity", "runbook", "instance", "job"]) | st.text(max_size=20),
                    label_texts, max_size=5),
    st.from_regex(r"[A-Za-z0-9]{1,128}", fullmatch=True),
)
# mapped alerts (so they may create) aimed at arbitrary namespace labels: existing or not, sanitised or not
mapped_payloads = st.builds(
    lambda name, namespace, fp: notification(alert(name, fingerprint=fp, labels={"namespace": namespace})),
    st.sampled_from(sorted(DEFAULT_ROUTES)),
    st.one_of(label_texts, st.just("")),
    st.from_regex(r"[a-f0-9]{16}", fullmatch=True),
)
bodies = (
    st.binary(max_size=3000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | mutated_payloads.map(lambda p: json.dumps(p).encode())
    | odd_label_payloads.map(lambda p: json.dumps(p).encode())
    | mapped_payloads.map(lambda p: json.dumps(p).encode())
)
authorizations = st.one_of(
    st.just("right"), st.just("right"), st.just("right"), st.none(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),  # what a header can carry
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
@given(body=bodies, authorization=authorizations)
async def test_random_input_is_answered_4xx_or_2xx_and_rejections_create_nothing(
    bridge: Bridge, body: bytes, authorization: str | None
) -> None:
    before = len(_all_incidents(bridge))
    if authorization == "right":
        reply = await bridge.post(body)
    elif authorization is None:
        reply = await bridge.post(body, auth=None)
    else:
        reply = await bridge.post(body, auth=None, headers={"Authorization": authorization})

    event(f"HTTP {reply.status} {reply.body.get('reason') or reply.outcomes}")
    assert reply.status < 500, reply.body
    after = len(_all_incidents(bridge))
    if reply.status >= 400:
        assert after == before, reply.body
        assert reply.body["reason"], reply.body  # every rejection says why
    else:
        assert reply.status == 200
        assert after - before == reply.outcomes.count("created")


def _all_incidents(bridge: Bridge) -> list[dict[str, Any]]:
    """Every namespace: a sanitised namespace label may have aimed an incident at another one."""
    return bridge.cluster.list("ops.tradesense.io/v1alpha1", "TradeSenseIncident")
