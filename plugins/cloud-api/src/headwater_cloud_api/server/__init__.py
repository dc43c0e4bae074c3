"""The orchestration API server: ``create_app(database_url=...)`` is the ASGI app (GraphQL at /graphql)."""

from headwater_cloud_api.server.app import create_app
from headwater_cloud_api.server.run import ServerThread, serve

__all__ = ["create_app", "serve", "ServerThread"]
