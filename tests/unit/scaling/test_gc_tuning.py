"""The operator process' garbage-collector settings (cli.run.tune_gc): a burst of allocations, as when a thousand
ScalingPolicies cross their target together, must not set off collections that stop the event loop.

Run in a fresh interpreter: the settings are process-wide and this test process must keep its own.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

PROBE = """
import gc, json
import tradesense_operator.handlers.registry
from tradesense_operator.cli.run import tune_gc
if {tuned}:
    tune_gc()
before = [s["collections"] for s in gc.get_stats()]
kept = [[{{}} for _ in range(100)] for _ in range(400)]  # 40,400 containers alive at once, like requests in flight
after = [s["collections"] for s in gc.get_stats()]
print(json.dumps({{"young": after[0] - before[0], "frozen": gc.get_freeze_count()}}))
"""


@functools.cache
def _probe(tuned: bool) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(tuned=tuned)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def test_a_burst_of_allocations_sets_off_no_collection_once_tuned() -> None:
    assert _probe(tuned=False)["young"] > 0  # CPython's defaults collect during the same burst
    assert _probe(tuned=True)["young"] == 0


def test_what_the_imports_built_is_frozen_out_of_every_collection() -> None:
    assert _probe(tuned=False)["frozen"] == 0
    assert _probe(tuned=True)["frozen"] > 10_000
