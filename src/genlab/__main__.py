"""``python -m genlab``: the command line (what ``torchrun -m genlab train ...`` runs in every process)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
