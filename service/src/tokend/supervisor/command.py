"""``tokend serve`` / ``python -m tokend.server``: settings from flags and ``TOKEND_*`` variables, then the
supervisor. Bad settings exit with status 2 and a message naming the flag and the variable.

    tokend serve --port 50051 --workers 4 --registry /srv/models
    TOKEND_MODELS=cl100k_base,o200k_base tokend serve
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tokend.settings import Settings, SettingsError, add_setting_flags, setting_flags
from tokend.supervisor.supervisor import EXIT_CONFIG_ERROR, Supervisor

__all__ = ["DESCRIPTION", "add_serve_arguments", "run_serve", "main"]

DESCRIPTION = "Run the tokend gRPC service. Every flag can also be set as TOKEND_<FLAG> (e.g. TOKEND_PORT)."


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser)


def run_serve(args: argparse.Namespace | Any) -> int:
    """Validate settings and run the supervisor until it is told to stop; returns the exit code."""
    try:
        settings = Settings.load(flags=setting_flags(args))
    except SettingsError as exc:
        print(f"tokend serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return Supervisor(settings).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokend serve", description=DESCRIPTION)
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
