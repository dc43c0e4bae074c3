"""Code that runs on the Dask scheduler (sent by value, so the scheduler needs no headwater installed)."""

from __future__ import annotations

from typing import Any

__all__ = ["drop_topic"]


def drop_topic(topic: str, dask_scheduler: Any = None) -> bool:
    """Forget the events the scheduler keeps for ``topic`` (a finished flow run's pushed outcomes)."""
    broker = getattr(dask_scheduler, "_broker", None)
    topics = getattr(broker, "_topics", None)
    if not isinstance(topics, dict) or topic not in topics:
        return False
    entry = topics[topic]
    if getattr(entry, "subscribers", None):
        entry.events.clear()  # someone still listens: keep the topic, drop its history
        return True
    del topics[topic]
    return True
