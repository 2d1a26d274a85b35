"""`python -m shared <command>`: see shared/cli.py."""

import sys

from shared.cli import main

sys.exit(main())
