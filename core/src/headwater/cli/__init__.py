"""The ``headwater`` command line (click + rich). Plugins add commands with the ``register_commands`` hook."""
