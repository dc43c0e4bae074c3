"""CLI commands of headwater-cloud-api (added to ``headwater`` through the ``register_commands`` hook)."""
