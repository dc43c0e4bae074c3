"""Prefect 1's ``prefect.engine.signals``: the signals of :mod:`headwater.signals`."""

from headwater.signals import (
    ENDRUN,
    FAIL,
    LOOP,
    PAUSE,
    RETRY,
    SKIP,
    SUCCESS,
    TRIGGERFAIL,
    VALIDATIONFAIL,
    HeadwaterSignal,
    PrefectStateSignal,
    signal_from_state,
)

__all__ = [
    "HeadwaterSignal",
    "PrefectStateSignal",
    "FAIL",
    "TRIGGERFAIL",
    "VALIDATIONFAIL",
    "SUCCESS",
    "RETRY",
    "SKIP",
    "LOOP",
    "PAUSE",
    "ENDRUN",
    "signal_from_state",
]
