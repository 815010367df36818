"""``python -m antiforge_lib``: the ``antiforge`` command line (see :mod:`antiforge_lib.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
