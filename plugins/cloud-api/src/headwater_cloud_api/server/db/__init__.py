"""The server's data: SQLAlchemy 2 models, engines/sessions, alembic migrations."""

from headwater_cloud_api.server.db.session import Database, default_database_url, upgrade_database

__all__ = ["Database", "default_database_url", "upgrade_database"]
