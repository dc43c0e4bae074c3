"""``python -m headwater.cli`` runs the ``headwater`` command."""

from headwater.cli.main import main

main()
