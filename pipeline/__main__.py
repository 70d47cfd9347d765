"""``python -m pipeline``: the same CLI as the ``dragpipe`` console script."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
