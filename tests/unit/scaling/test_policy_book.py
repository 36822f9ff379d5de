"""PolicyBook: which policies are due (a policy handed out is busy until its outcome is recorded), which view
of each is the freshest, and when the computed status (not written every round) may be built on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicyStatus
from tradesense_operator.services.scaling.book import PolicyBook

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def body(name: str, version: int, *, paused: bool = False, evaluated: datetime | None = None,
         reason: str | None = None) -> dict[str, Any]:
    annotations = {"ops.tradesense.io/paused": "true"} if paused else {}
    status: dict[str, Any] = {"observedGeneration": 1}
    if evaluated is not None:
        status["lastEvaluationTime"] = evaluated.isoformat()
    if reason is not None:
        status["conditions"] = [{"type": "AbleToScale", "status": "False", "reason": reason, "message": "m",
                                 "lastTransitionTime": NOW.isoformat()}]
    return {"metadata": {"namespace": "ns", "name": name, "generation": 1, "resourceVersion": str(version),
                         "annotations": annotations},
            "spec": {"pollingIntervalSeconds": 15}, "status": status}


def test_a_paused_policy_that_says_so_is_never_due_and_others_are_due_every_interval() -> None:
    book = PolicyBook()
    book.observe(body("paused", 1, paused=True, reason="Paused", evaluated=NOW))
    book.observe(body("active", 2, evaluated=NOW))
    assert book.due(NOW, 0.0) == []
    assert book.next_due(NOW) == NOW + timedelta(seconds=15)
    assert [d.key for d in book.due(NOW + timedelta(seconds=15), 0.0)] == [("ns", "active")]


def test_the_remembered_evaluation_time_counts_when_the_status_was_not_written() -> None:
    book = PolicyBook()
    book.observe(body("p", 1, evaluated=NOW))
    later = NOW + timedelta(seconds=15)
    [due] = book.due(later, 0.0)
    book.evaluated(due.key, now=later, decided_from=due.body, written=None, computed=ScalingPolicyStatus())
    assert book.due(later + timedelta(seconds=14), 0.0) == []
    [again] = book.due(later + timedelta(seconds=15), 0.0)
    assert again.previous == ScalingPolicyStatus()  # computed from this same body: built on


def test_our_write_is_the_view_until_the_watch_catches_up_and_someone_elses_write_drops_the_memory() -> None:
    book = PolicyBook()
    book.observe(body("p", 1))
    [due] = book.due(NOW, 0.0)
    computed = ScalingPolicyStatus(desired_replicas=3)
    book.evaluated(due.key, now=NOW, decided_from=due.body, written=body("p", 5, evaluated=NOW), computed=computed)
    book.observe(body("p", 4))                                     # a late event from before our write: ignored
    [due] = book.due(NOW + timedelta(seconds=15), 0.0)
    assert due.body["metadata"]["resourceVersion"] == "5"
    assert due.previous == computed
    assert book.due(NOW + timedelta(seconds=15), 0.0) == []        # busy until its outcome is recorded
    assert book.next_due(NOW) is None
    book.failed(due.key, retry_at=0.0)
    book.observe(body("p", 6, evaluated=NOW))                      # someone else wrote after us
    [due] = book.due(NOW + timedelta(seconds=15), 0.0)
    assert due.body["metadata"]["resourceVersion"] == "6"
    assert due.previous is None                                    # decide from what they stored


def test_a_failed_evaluation_is_retried_on_the_loop_clock_and_a_change_retries_at_once() -> None:
    book = PolicyBook()
    book.observe(body("p", 1))
    book.failed(("ns", "p"), retry_at=10.0)
    assert book.due(NOW, 9.0) == []
    assert book.next_retry() == 10.0
    assert [d.key for d in book.due(NOW, 10.0)] == [("ns", "p")]
    book.failed(("ns", "p"), retry_at=10.0)
    book.observe(body("p", 2))
    assert [d.key for d in book.due(NOW, 0.0)] == [("ns", "p")]
    book.forget(("ns", "p"))
    assert len(book) == 0
