"""``python -m tokend.server [flags]`` = ``tokend serve [flags]`` (without the rest of the CLI)."""

from __future__ import annotations

import sys

from tokend.supervisor.command import main

if __name__ == "__main__":
    sys.exit(main())
