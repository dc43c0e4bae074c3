"""alembic environment: runs on the connection passed in ``config.attributes["connection"]`` (see session.py)."""

from alembic import context

from headwater_cloud_api.server.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through headwater server database ...
    raise RuntimeError("Run migrations with `headwater server database upgrade` (it passes the connection).")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
