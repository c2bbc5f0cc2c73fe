"""`tokend`: the command line (entry point of the distribution).

    tokend serve ...                      the gRPC service (tokend.cli.serve)
    tokend train ...                      train a BPE model and publish it
    tokend registry list|show|verify|publish|alias|import|index
    tokend encode|count|decode --model REF

Exit status: 0 success; 1 the command failed (unknown model, checksum mismatch, verification failure,
unreadable file; one line on stderr, no traceback); 2 a usage error (bad or missing arguments);
130 interrupted. Set TOKEND_DEBUG=1 to get tracebacks. Not handled: shell completion.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from tokend.cli.arguments import CommandFailed, UsageError

PROG = "tokend"


def tokend_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokend")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from tokend.cli import registry_commands, token_commands, train

    parser = argparse.ArgumentParser(prog=PROG, description="tokend: BPE tokenizer engine, model registry and gRPC service.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {tokend_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve_parser(subparsers)
    train.add_parser(subparsers)
    registry_commands.add_parser(subparsers)
    token_commands.add_parsers(subparsers)
    return parser


def _add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """`tokend serve` lives in tokend.cli.serve (the server's own module); tolerate it being absent."""
    try:
        from tokend.cli import serve
    except ImportError as error:
        reason = str(error)
        parser = subparsers.add_parser("serve", help="run the gRPC service (unavailable in this installation)")

        def unavailable(args: argparse.Namespace) -> int:
            raise UsageError(f"`tokend serve` is not available in this installation: {reason}")

        parser.set_defaults(handler=unavailable)
        return
    serve.add_parser(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("TOKEND_DEBUG") not in (None, "", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in provenance by `tokend train`
    if not logging.getLogger().handlers and args.command != "serve":
        logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="tokend: %(levelname)s: %(message)s")
    from tokend.errors import TokendError

    # Our commands set `handler`; tokend.cli.serve (the server's module) sets `func`.
    handler = getattr(args, "handler", None) or getattr(args, "func")
    try:
        return int(handler(args) or 0)
    except UsageError as error:
        parser_for(parser, args).error(str(error))  # exits 2, like argparse's own errors
    except (CommandFailed, TokendError, OSError, UnicodeDecodeError) as error:
        if debug:
            raise
        if isinstance(error, BrokenPipeError):
            return 0  # `tokend encode ... | head`: the reader left, nothing to report
        print(f"{PROG}: error: {_describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def parser_for(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ran, so usage errors print that command's usage line."""
    names = [getattr(args, "command", None), getattr(args, "registry_command", None)]
    current = parser
    for name in names:
        if name is None:
            break
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                current = action.choices[name]
                break
    return current


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, UnicodeDecodeError):
        return f"the token ids do not decode to UTF-8 ({error}); use --errors replace or raw"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
