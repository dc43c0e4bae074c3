"""The authoring model: tasks, edges, parameters and flows (Prefect 1's ``prefect.core``)."""

from headwater.core.edge import Edge
from headwater.core.flow import Flow
from headwater.core.parameter import DateTimeParameter, JSONParameter, Parameter
from headwater.core.task import Task

__all__ = ["Flow", "Task", "Parameter", "DateTimeParameter", "JSONParameter", "Edge"]
