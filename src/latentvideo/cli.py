"""`python -m latentvideo.cli` and `torchrun -m latentvideo.cli`: the command line lives in apps/cli.py."""

import sys

from .apps.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
