"""``python -m genlab``: the command line (what ``torchrun -m genlab train ...`` runs in every process)."""
import sys

from .cli import exit_worker, main

if __name__ == "__main__":
    rc = main()
    exit_worker(rc)  # a torchrun worker ends here, without the C++ teardown (cli.exit_worker)
    sys.exit(rc)
