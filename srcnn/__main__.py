"""`python -m srcnn`: the `srcnn` command (srcnn/cli.py)."""

import sys

from srcnn.cli import main

sys.exit(main())
