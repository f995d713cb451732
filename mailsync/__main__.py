"""`python -m mailsync`: the same entry point as the `mailsync` console script."""

import sys

from mailsync.cli import main

sys.exit(main())
