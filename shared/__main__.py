"""`python -m shared <command>`: see shared/cli/__init__.py."""

import sys

from shared.cli import main

sys.exit(main())
