"""Declarative flow specs: flows as data (dicts, YAML, JSON), ticked by an engine, kept in a database.

>>> from headwater.spec import FlowEngine
>>> engine = FlowEngine()
>>> flow = engine.flow_spec_to_flow({"label": "hi", "tasks": [{"task_type": "print", "task_params": {"msg": "hi"}}]})
>>> engine.tick_flow_until_has_no_pending(flow)
hi

See docs/specs.md. ``FlowStore`` (SQLAlchemy) and ``Worker`` need ``pip install 'headwater[sql]'``.
"""

from headwater.spec.engine import FlowEngine, FlowFailedError, TickContext, TickLimitError
from headwater.spec.interpolation import InterpolationError
from headwater.spec.model import ROOT_KEY, SpecError, SpecFlow, SpecTask, Status, flow_from_dict, flow_to_dict
from headwater.spec.spec import flow_from_spec, load_spec, spec_to_flow_dict
from headwater.spec.store import FlowExistsError, FlowNotFoundError, FlowStore, LeaseLostError, StaleFlowError
from headwater.spec.task_types import UnknownTaskTypeError, get_handler, register, task_types, unregister
from headwater.spec.worker import Worker

__all__ = [
    "FlowEngine",
    "TickContext",
    "FlowFailedError",
    "TickLimitError",
    "SpecError",
    "InterpolationError",
    "UnknownTaskTypeError",
    "SpecTask",
    "SpecFlow",
    "Status",
    "ROOT_KEY",
    "load_spec",
    "spec_to_flow_dict",
    "flow_from_spec",
    "flow_from_dict",
    "flow_to_dict",
    "register",
    "unregister",
    "get_handler",
    "task_types",
    "FlowStore",
    "FlowNotFoundError",
    "FlowExistsError",
    "LeaseLostError",
    "StaleFlowError",
    "Worker",
]
