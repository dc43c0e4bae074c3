"""The GraphQL schema (strawberry): ``schema`` = Query + Mutation; client mistakes are errors with ``extensions.code``."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from headwater_cloud_api.server.errors import APIError
from headwater_cloud_api.server.limits import Deadline, QueryCostRule
from headwater_cloud_api.server.schema.agents import AgentMutation, AgentQuery
from headwater_cloud_api.server.schema.cache import DocumentCache
from headwater_cloud_api.server.schema.mutations import Mutation
from headwater_cloud_api.server.schema.queries import Query
from headwater_cloud_api.server.validation import InputChecks

__all__ = ["schema", "Schema"]

_log = logging.getLogger("headwater.server")


class Schema(strawberry.Schema):
    """Logs only unexpected errors (with traceback); client mistakes (APIError, validation) are just returned."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, (APIError, GraphQLError)):  # GraphQLError: bad variables
                _log.error("Unexpected error in %s", error.path, exc_info=original)


schema = Schema(query=merge_types("Query", (Query, AgentQuery)), mutation=merge_types("Mutation", (Mutation, AgentMutation)), config=StrawberryConfig(auto_camel_case=False),
                extensions=[DocumentCache,  # clients repeat a few documents: parse and validate each once
                            lambda: AddValidationRules([QueryCostRule]),  # depth and cost limits, judged once per document
                            Deadline,
                            InputChecks])  # NUL, lengths, negative limits: BAD_INPUT naming the argument (validation.py)  # a request past its deadline stops at its next field (server/limits.py)
"""Field and argument names are snake_case, as in Python: ``flow(name:, project:) { run_config { labels } }``."""
