"""The engine: ticks a flow's graph on an executor and records every state transition."""

from headwater.engine.flow_runner import FlowRunner, ParameterError, run_flow

__all__ = ["FlowRunner", "ParameterError", "run_flow"]
