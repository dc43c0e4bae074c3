"""``python -m headwater`` runs the ``headwater`` command (the same as ``python -m headwater.cli``)."""

from headwater.cli.main import main

if __name__ == "__main__":
    main()
