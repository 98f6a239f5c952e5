"""``python -m optsteps_loader``: the ``optsteps`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
