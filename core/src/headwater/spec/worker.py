"""The spec worker: claim flows from a :class:`~headwater.spec.store.FlowStore`, tick each once, release them.

Run several (processes, machines) against one database: a claim leases a flow to one worker,
so no flow is ticked by two at once, and a worker that dies leaves its flows to come back
when their leases expire. ``headwater spec worker --db URL`` runs :meth:`Worker.run`.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import TYPE_CHECKING

from headwater.spec.engine import FlowEngine
from headwater.spec.model import Status, set_flow_state
from headwater.spec.store import FlowNotFoundError, StaleFlowError
from headwater.states import Failed

if TYPE_CHECKING:
    from headwater.spec.model import SpecFlow
    from headwater.spec.store import FlowStore

__all__ = ["Worker"]

logger = logging.getLogger("headwater.spec.worker")


class Worker:
    """Ticks stored flows: ``interval`` seconds between idle polls, up to ``max_flows`` flows per claim.

    ``lease_seconds`` must be longer than ticking ``max_flows`` flows once takes; a worker
    that overruns its lease loses that tick (another worker ticks the flow again).
    """

    def __init__(
        self,
        store: FlowStore,
        engine: FlowEngine | None = None,
        *,
        worker_id: str | None = None,
        interval: float = 1.0,
        max_flows: int = 10,
        lease_seconds: float = 60.0,
    ) -> None:
        if max_flows < 1:
            raise ValueError(f"Worker: max_flows must be at least 1, got {max_flows!r}.")
        if lease_seconds <= 0:
            raise ValueError(f"Worker: lease_seconds must be positive, got {lease_seconds!r}.")
        self.store = store
        self.engine = engine or FlowEngine(store=store)
        self.worker_id = worker_id or store.worker_id
        self.interval = interval
        self.max_flows = max_flows
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the flow it is ticking (claimed, unticked flows are given back)."""
        self._stop.set()

    def tick_once(self) -> int:
        """Claim up to ``max_flows`` flows, tick each once and release it; how many were ticked."""
        flows = self.store.claim(self.max_flows, self.lease_seconds, worker_id=self.worker_id)
        ticked = 0
        for i, flow in enumerate(flows):
            if self._stop.is_set():
                for rest in flows[i:]:
                    self._give_back(rest)
                break
            self._tick(flow)
            ticked += 1
        return ticked

    def run(self, until_done: bool = False, max_polls: int | None = None) -> int:
        """Poll and tick until :meth:`stop` (or, with ``until_done``, until no flow is PENDING or RUNNING).

        Returns how many flow ticks it did.
        """
        logger.info("Worker %s polling %s", self.worker_id, self.store.url)
        ticks = polls = 0
        while not self._stop.is_set():
            try:
                done = self.tick_once()
            except Exception:  # the database went away for a moment: say so, wait, try again
                logger.exception("Worker %s: claiming flows from %s failed; retrying", self.worker_id, self.store.url)
                done = 0
            ticks += done
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            if done == 0:
                if until_done and self.store.count(status=(Status.PENDING, Status.RUNNING)) == 0:
                    break
                self._stop.wait(self.interval)
        logger.info("Worker %s stopped after %d tick(s)", self.worker_id, ticks)
        return ticks

    def _tick(self, flow: SpecFlow) -> None:
        try:
            self.engine.tick_flow(flow)
        except Exception as exc:  # an engine error (not a task error): fail the flow visibly, never loop on it
            logger.exception("Worker %s: ticking flow %s failed", self.worker_id, flow.key)
            set_flow_state(flow, Failed(f"Engine error while ticking the flow: {exc!r}", exc))
            flow.data.setdefault("errors", []).append(
                {"task": None, "message": f"Engine error: {exc!r}", "traceback": traceback.format_exc()}
            )
        try:
            self.store.release(flow)
        except (StaleFlowError, FlowNotFoundError) as exc:
            logger.warning("Worker %s: %s", self.worker_id, exc)
            return
        if flow.status in (Status.COMPLETED, Status.FAILED):
            logger.info("Flow %s %s", flow.key, flow.status)

    def _give_back(self, flow: SpecFlow) -> None:
        try:
            self.store.release(flow, save=False)
        except (StaleFlowError, FlowNotFoundError) as exc:
            logger.warning("Worker %s: %s", self.worker_id, exc)
