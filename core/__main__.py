"""`python -m core ...`: the CLI in core/cli/__init__.py (kept apart so no module imports this file back)."""

import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main())
