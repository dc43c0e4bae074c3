"""Limits that keep one client from exhausting the API: query depth and cost, request deadlines, saturation.

* :class:`QueryCostRule` is a validation rule (so it runs once per distinct document and its
  verdict is cached with it): a document deeper than :data:`MAX_QUERY_DEPTH` or whose estimated
  cost exceeds :data:`MAX_QUERY_COST` is refused before anything executes. The estimate counts
  every object the answer may hold: a list field multiplies what is under it by its ``limit``
  argument (or its default, or :data:`DEFAULT_LIST_SIZE` when it has none).
* :class:`Deadline` is a schema extension: every field resolution checks the request's deadline
  (and the server's shutdown flag), so a request that ran out of time really stops working. The
  database gets the same deadline: ``statement_timeout`` on PostgreSQL, a progress handler on SQLite.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)
from strawberry.extensions import SchemaExtension

from headwater_cloud_api.server.errors import APIError

__all__ = [
    "MAX_QUERY_DEPTH",
    "MAX_QUERY_COST",
    "DEFAULT_LIST_SIZE",
    "REQUEST_TIMEOUT",
    "QueryCostRule",
    "Deadline",
    "RequestTimeout",
    "request_deadline",
    "deadline_passed",
    "shutting_down",
    "measure_document",
]

MAX_QUERY_DEPTH = 12
"""Deepest selection nesting accepted (introspection fields are not counted)."""
MAX_QUERY_COST = 100_000
"""Most objects a query's answer may be estimated to hold."""
DEFAULT_LIST_SIZE = 10
"""Estimated length of a list field without a ``limit`` argument (a run's task runs, a flow's versions...)."""
REQUEST_TIMEOUT = 30.0
"""Seconds a GraphQL request may run before it is stopped and answered with TIMEOUT."""

_local = threading.local()


class RequestTimeout(APIError):
    code = "TIMEOUT"


@contextlib.contextmanager
def request_deadline(seconds: float, stopping: threading.Event | None = None) -> Iterator[None]:
    """Run the body (one request, in its worker thread) with a deadline ``seconds`` from now.

    ``stopping``: the server's shutdown flag; once set, the request stops at its next field too.
    """
    previous = getattr(_local, "deadline", None), getattr(_local, "stopping", None)
    _local.deadline = time.monotonic() + seconds
    _local.timeout = seconds
    _local.stopping = stopping
    try:
        yield
    finally:
        _local.deadline, _local.stopping = previous


def shutting_down() -> bool:
    stopping = getattr(_local, "stopping", None)
    return stopping is not None and stopping.is_set()


def deadline_passed() -> bool:
    """True in a request's thread once its deadline has passed (or the server is stopping)."""
    deadline = getattr(_local, "deadline", None)
    return shutting_down() or (deadline is not None and time.monotonic() > deadline)


def remaining() -> float | None:
    """Seconds left for the current request (None outside a request)."""
    deadline = getattr(_local, "deadline", None)
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _check() -> None:
    if deadline_passed():
        if shutting_down():
            raise RequestTimeout("The server is shutting down; the request was stopped. Retry against a running server.",
                                 "SHUTTING_DOWN")
        raise RequestTimeout(f"The request ran longer than the server's limit of {getattr(_local, 'timeout', REQUEST_TIMEOUT):g} s "
                             "and was stopped; ask for less (a smaller limit, fewer nested lists).")


class Deadline(SchemaExtension):
    """Stops a request at its next field once its deadline passed (or the server is shutting down)."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "deadline", None) is not None:
            _check()
        return _next(root, info, *args, **kwargs)


def _named(type_: Any) -> tuple[Any, bool]:
    """The named type under NonNull/List wrappers, and whether a list is among them."""
    is_list = False
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


def _fanout(node: FieldNode, field: Any) -> int:
    for arg in node.arguments or ():
        if arg.name.value == "limit":
            if isinstance(arg.value, IntValueNode):
                return max(1, int(arg.value.value))
            break  # a variable: estimated by the argument's default
    limit = field.args.get("limit") if field is not None else None
    if limit is not None and isinstance(limit.default_value, int):
        return max(1, limit.default_value)
    return DEFAULT_LIST_SIZE


def measure_document(schema: Any, document: Any) -> tuple[int, int]:
    """``(depth, cost)`` of the largest operation in ``document`` (a parsed GraphQL document) against ``schema``."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    worst = (0, 0)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = schema.get_root_type(definition.operation)
        if root is None:
            continue
        depth, cost = _measure(definition.selection_set, root, fragments, 1, 1, set())
        worst = (max(worst[0], depth), max(worst[1], cost))
    return worst


def _measure(selection_set: SelectionSetNode | None, parent: Any, fragments: dict[str, Any], depth: int, multiplier: int,
             visiting: set[str]) -> tuple[int, int]:
    if selection_set is None or not isinstance(parent, GraphQLObjectType):
        return depth - 1, 0
    deepest, cost = depth, 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name.startswith("__"):
                continue
            field = parent.fields.get(name)
            if field is None:
                continue  # unknown fields are reported by graphql's own rules
            named, is_list = _named(field.type)
            factor = _fanout(selection, field) if is_list else 1
            cost += multiplier * factor
            if selection.selection_set is not None:
                d, c = _measure(selection.selection_set, named, fragments, depth + 1, multiplier * factor, visiting)
                deepest, cost = max(deepest, d), cost + c
        elif isinstance(selection, InlineFragmentNode):
            target = parent
            if selection.type_condition is not None:
                target = parent  # object types only in this schema: the condition names the parent itself
            d, c = _measure(selection.selection_set, target, fragments, depth, multiplier, visiting)
            deepest, cost = max(deepest, d), cost + c
        elif isinstance(selection, FragmentSpreadNode):
            fname = selection.name.value
            fragment = fragments.get(fname)
            if fragment is None or fname in visiting:  # unknown or cyclic: graphql's own rules report it
                continue
            d, c = _measure(fragment.selection_set, parent, fragments, depth, multiplier, visiting | {fname})
            deepest, cost = max(deepest, d), cost + c
        if cost > MAX_QUERY_COST * 10 or deepest > MAX_QUERY_DEPTH * 4:  # far over: stop counting
            break
    return deepest, cost


class QueryCostRule(ValidationRule):
    """Refuses documents deeper than :data:`MAX_QUERY_DEPTH` or estimated to cost more than :data:`MAX_QUERY_COST`."""

    def enter_document(self, node: Any, *_args: Any) -> None:
        depth, cost = measure_document(self.context.schema, node)
        if depth > MAX_QUERY_DEPTH:
            self.report_error(GraphQLError(
                f"The query is nested {depth} levels deep; the limit is {MAX_QUERY_DEPTH}. Ask for fewer nested objects.",
                extensions={"code": "QUERY_TOO_COMPLEX"}))
        elif cost > MAX_QUERY_COST:
            self.report_error(GraphQLError(
                f"The query could return about {cost} objects; the limit is {MAX_QUERY_COST}. Use smaller 'limit' "
                "arguments or fewer nested lists.", extensions={"code": "QUERY_TOO_COMPLEX"}))
