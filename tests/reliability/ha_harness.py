"""Two (or more) operator replicas in one test process, each gated by the real leader election.

`ElectedOperator` is the in-process twin of `tradesense-operator run --leader-elect`: its thread first
blocks in `services.leadership.lead` until it holds the Lease, then runs the same kopf operator as
`OperatorHandle`; losing the Lease stops its loop on the spot (the CLI exits the process instead).
`kill()` is a SIGKILLed pod: no release, the Lease simply stops being renewed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import kopf

from tests.reliability.abrupt import keep_tasks
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.leadership import ElectionTiming, LeaderElector, lead
from tradesense_sandbox.runner import Endpoint, OperatorHandle

# Short, with client-go's proportions (lease > renew deadline > retry period) and a renew deadline ten retry
# periods long, so a loaded test machine does not starve the leader into giving up.
FAST_TIMING = ElectionTiming(lease_seconds=3.0, renew_deadline_seconds=2.5, retry_seconds=0.25)


class ElectedOperator(OperatorHandle):
    """An operator replica that acts only while it holds the leader-election Lease."""

    def __init__(
        self,
        endpoint: Endpoint,
        kubeconfig: Path,
        *,
        identity: str,
        lease_namespace: str,
        registry: kopf.OperatorRegistry,
        namespaces: list[str],
        timing: ElectionTiming = FAST_TIMING,
    ) -> None:
        super().__init__(endpoint, registry=registry, memo=kopf.Memo(), namespaces=namespaces, settings=None)
        self.identity = identity
        self._kubeconfig = kubeconfig
        self._lease_namespace = lease_namespace
        self._timing = timing
        self.leading = threading.Event()   # set once this replica started acting
        self.lost = threading.Event()      # set when it gave leadership up

    def launch(self) -> ElectedOperator:
        """Start the replica without waiting: a follower blocks until it leads."""
        self._thread.start()
        return self

    async def _main(self) -> None:
        kube = await KubeClient.from_kubeconfig(str(self._kubeconfig))
        elector = LeaderElector(kube, SystemClock(), namespace=self._lease_namespace, identity=self.identity,
                                timing=self._timing)

        async def act() -> None:
            self.leading.set()
            await OperatorHandle._main(self)

        try:
            await lead(elector, act, on_lost=self._exit)
        finally:
            await kube.close()

    def _exit(self) -> None:
        """What `os._exit` is for the CLI: this replica does nothing more."""
        self.lost.set()
        self.kill_from_inside()

    def kill_from_inside(self) -> None:
        loop = self._loop
        if loop is not None:
            self._killed = True
            keep_tasks(loop)
            loop.stop()

    def kill(self) -> None:
        loop = self._loop
        super().kill()
        keep_tasks(loop)
        self._stop_flag.set()  # free kopf's executor thread waiting on the flag (else pytest hangs at exit)

    def shutdown(self) -> None:
        """Teardown: a leading replica stops gracefully; a follower (blocked in the election) is killed."""
        if self.leading.is_set() and self.running and not self.killed:
            self.stop(reraise=False)
        else:
            self.kill()
        self._stop_flag.set()


def launch(endpoint: Endpoint, kubeconfig: Path, **kwargs: Any) -> ElectedOperator:
    return ElectedOperator(endpoint, kubeconfig, **kwargs).launch()
