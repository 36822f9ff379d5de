"""The framework's floor for bench/scale.py: a kopf operator that only patches status on create.

Same kopf, same emulated API, same incidents; it does nothing but write `status.phase: Succeeded` once
per TradeSenseIncident. Whatever tradesense-operator spends beyond this is the cost of its own design.

Run by bench/scale.py (kept out of bench/*.py, which `make bench` runs):
`python bench/floor/minimal_operator.py` with KUBECONFIG pointing at the emulator.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # no Events: the floor is one status write per object
    settings.watching.server_timeout = 300


@kopf.on.create("ops.tradesense.io", "v1alpha1", "tradesenseincidents")
def created(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Succeeded"


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    kopf.run(standalone=True, clusterwide=True, liveness_endpoint=None)
