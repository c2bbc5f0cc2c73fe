"""``python -m tokend.server [flags]`` = ``tokend serve [flags]`` (without the rest of the CLI)."""

from __future__ import annotations

import sys

from tokend.cli.serve import build_parser, run_serve

if __name__ == "__main__":
    sys.exit(run_serve(build_parser().parse_args()))
