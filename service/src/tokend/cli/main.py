"""`tokend`: the command line (entry point of the distribution).

    tokend serve ...                      the gRPC service (tokend.cli.serve)
    tokend train ...                      train a BPE model and publish it
    tokend registry list|show|verify|publish|alias|import|index|chat-format
    tokend encode|count|decode --model REF        (encode|count --chat: a chat in the model's chat format)
    tokend truncate|chunk --max-tokens N --model REF

Exit status: 0 success; 1 the command failed (unknown model, checksum mismatch, verification failure,
unreadable file, a disallowed special token; one line on stderr, no traceback); 2 a usage error (bad or
missing arguments); 130 interrupted. Errors of the token commands are the service layer's
(``tokend.service.errors``): ``_EXIT_STATUS`` maps their kinds, ``_HINTS`` words their advice in flags.
Set TOKEND_DEBUG=1 to get tracebacks. Not handled: shell completion.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from typing import Sequence

from tokend.cli.arguments import CommandFailed, UsageError
from tokend.errors import TokendError
from tokend.service.errors import ErrorKind, Hint, describe

PROG = "tokend"


def tokend_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokend")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from tokend.cli import budget_commands, registry_commands, token_commands, train

    parser = argparse.ArgumentParser(prog=PROG, description="tokend: BPE tokenizer engine, model registry and gRPC service.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {tokend_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve_parser(subparsers)
    train.add_parser(subparsers)
    registry_commands.add_parser(subparsers)
    token_commands.add_parsers(subparsers)
    budget_commands.add_parsers(subparsers)
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
    handler = args.handler
    try:
        if args.command in ("train", "registry"):  # they record their arguments in a manifest, as UTF-8 text
            for argument in argv:
                _check_utf8(argument, f"argument {argument[:200]!r}", _MANIFEST_FIX)
        if getattr(args, "text", None) is not None:  # encode, count, truncate, chunk: text, never bytes
            _check_utf8(args.text, "--text", _TEXT_FIX)
        return int(handler(args) or 0)
    except UsageError as error:
        parser_for(parser, args).error(str(error))  # exits 2, like argparse's own errors
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if isinstance(error, BrokenPipeError):
            return 0  # `tokend encode ... | head`: the reader left, nothing to report
        failed = _failure(error)
        if debug or failed is None:
            raise
        status, line = failed
        print(f"{PROG}: error: {line}", file=sys.stderr)
        return status
    return 0


_MANIFEST_FIX = "the manifest records the command (rename the file, or give the text as UTF-8)"
_TEXT_FIX = "give it as UTF-8, or convert it (e.g. with iconv) and pass it on stdin"


def _check_utf8(argument: str, what: str, fix: str) -> None:
    """An argument bytes argv could not decode holds surrogates (surrogateescape): it is refused, naming the
    first such byte, before anything reads it as text. (The engine, like tiktoken, would read each as U+FFFD.)"""
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError as error:
        offset = len(argument[: error.start].encode("utf-8"))
        code = ord(argument[error.start])
        byte = f" is 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else ""  # the byte surrogateescape stood for
        raise UsageError(f"{what} is not UTF-8 text (byte {offset}{byte}); {fix}") from None


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


# Service error kinds → exit status: every one means "the command failed".
_EXIT_STATUS = {kind: 1 for kind in ErrorKind}
_HINTS = {
    Hint.ALLOW_SPECIAL_TOKEN: lambda failure: (
        f"pass --allowed-special {shlex.quote(str(failure.metadata.get('token', '')))} (or all) to encode it as a "
        "special token, or --ordinary to encode it as plain text"
    ),
    Hint.DECODE_LENIENTLY: lambda failure: "use --errors replace or raw",
}


def _failure(error: BaseException) -> tuple[int, str] | None:
    """(exit status, stderr line) for an error the command reports, None for a bug (shown with a traceback)."""
    if isinstance(error, OSError):
        return 1, (f"{error.filename}: {error.strerror or error}" if error.filename is not None else str(error))
    if isinstance(error, CommandFailed):
        return 1, str(error)
    failure = describe(error)
    if failure is None:
        return (1, str(error)) if isinstance(error, TokendError) else None
    if failure.field is not None and failure.field.startswith("inputs["):
        line = failure.description or failure.message  # one input per command: no item to name
    elif failure.field is not None and failure.field.startswith("conversations["):
        inner = failure.metadata.get("field")  # one chat per command: the field inside it
        line = f"{inner}: {failure.description}" if inner else (failure.description or failure.message)
    elif isinstance(error, TokendError):
        line = str(error)  # the registry's or engine's own message
    else:
        line = failure.message
    if failure.hint is not None:
        line = f"{line}; {_HINTS[failure.hint](failure)}"
    return _EXIT_STATUS[failure.kind], line


if __name__ == "__main__":
    sys.exit(main())
