"""``tokend serve``: start the gRPC service (supervisor + workers + playground); flags come from the
settings model (``tokend.settings``), see ``tokend serve --help`` and DEVELOPERS.md.

    tokend serve --port 50051 --workers 4 --registry /srv/models
    TOKEND_MODELS=cl100k_base,o200k_base tokend serve
"""

from __future__ import annotations

import argparse
from typing import Any

from tokend.supervisor.command import DESCRIPTION, add_serve_arguments, run_serve

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the CLI's subparsers; the parsed namespace's ``handler`` runs it."""
    parser = subparsers.add_parser("serve", help="run the gRPC tokenizer service", description=DESCRIPTION)
    add_serve_arguments(parser)
    parser.set_defaults(handler=run_serve)
    return parser
