"""Entry point: ``python -m meshlab.istioctl`` (what ``<state>/bin/istioctl`` runs)."""

import sys

from meshlab.istioctl.cli import main

if __name__ == "__main__":
    sys.exit(main())
