"""Fixtures shared by every test folder.

PostgreSQL: ``postgres_server``, ``postgres_url`` and ``postgres_db_url`` start one real
PostgreSQL 15 server per session on 127.0.0.1 (see ``tests/pg.py``).
"""

from pg import postgres_db_url, postgres_server, postgres_url  # noqa: F401  (fixtures)
