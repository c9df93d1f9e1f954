"""Entry point: ``python -m meshlab``."""

import sys

from meshlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
