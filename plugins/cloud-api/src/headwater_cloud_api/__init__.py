"""headwater-cloud-api: the orchestration API server, the client resources behind ``headwater.Client``, registration.

Layout: ``server/`` (ASGI app, GraphQL schema, database, scheduler, auth), ``client/``
(httpx transport and the client nouns), ``registration.py`` (flows in, flow ids out),
``cli/`` (``headwater server|project|register|get|flow-run|kv``), ``plugin.py`` (hooks only).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
