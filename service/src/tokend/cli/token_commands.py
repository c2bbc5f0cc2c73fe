"""`tokend encode|count|decode --model REF`: tokenize stdin locally, for quick checks and shell pipelines.

    $ printf 'hello world' | tokend encode --model cl100k_base
    15339 1917
    $ printf 'hello world' | tokend count --model cl100k_base
    2
    $ echo '15339 1917' | tokend decode --model cl100k_base
    hello world

Input is taken exactly as given (a trailing newline from `echo` is part of the text; use `printf` or
`--text`). Special tokens are refused in the text unless allowed (`--allowed-special all` or a token), as
in tiktoken; `--ordinary` treats them as plain text. `decode` reads ids separated by whitespace or a JSON
list and writes the exact bytes (no newline added). `--chat` reads a chat as JSON instead and uses the
model's chat format (cli/chat_commands.py). Not handled: batches (use the gRPC service).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tokend.cli.arguments import UsageError, add_registry_argument
from tokend.cli.chat_commands import add_chat_arguments, run_count_chat, run_encode_chat
from tokend.service import ORDINARY_POLICY, UNLIMITED, ServedModels, SpecialTokenPolicy, TokenizerService


def add_parsers(subparsers: Any) -> None:
    for name, help_text in (
        ("encode", "print the token ids of stdin (or --text)"),
        ("count", "print the number of tokens of stdin (or --text)"),
    ):
        parser = subparsers.add_parser(
            name, help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. The text is taken exactly as given (a trailing "
            "newline from echo counts; use printf or --text).",
        )
        _add_model_arguments(parser)
        parser.add_argument("--text", help="tokenize this text instead of reading stdin")
        special = parser.add_mutually_exclusive_group()
        special.add_argument(
            "--allowed-special", metavar="TOKEN", nargs="+", default=[],
            help="special tokens to encode as such ('all' for every one); others in the text are an error",
        )
        special.add_argument("--ordinary", action="store_true", help="treat special-token text as plain text")
        parser.add_argument(
            "--json", action="store_true",
            help="print a JSON list instead of space-separated ids; with --chat, the whole result as a JSON object"
            if name == "encode" else "with --chat: the total, per-message counts and flags as a JSON object",
        )  # fmt: skip
        add_chat_arguments(parser)
        parser.set_defaults(handler=run_encode if name == "encode" else run_count)

    decode = subparsers.add_parser(
        "decode", help="print the text of token ids read from stdin",
        description="Decode token ids (space-separated or a JSON list, from stdin or --ids) and write the bytes.",
    )
    _add_model_arguments(decode)
    decode.add_argument("--ids", help="decode these ids (space-separated or JSON) instead of reading stdin")
    decode.add_argument(
        "--errors", choices=["raw", "replace", "strict"], default="raw",
        help="raw: write the exact bytes (default); replace/strict: decode as UTF-8 like tiktoken's decode()",
    )
    decode.set_defaults(handler=run_decode)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, metavar="REF", help="name, name@version or name@alias")
    add_registry_argument(parser)


def _service(args: argparse.Namespace) -> TokenizerService:
    from tokend.registry import Registry, default_registry

    registry = default_registry() if args.registry is None else Registry.open(args.registry, cache_dir=args.cache_dir)
    # A local command shares nothing: no request limits.
    return TokenizerService(ServedModels(registry), UNLIMITED)


def _input_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"stdin is not UTF-8 text ({error}); convert it first (e.g. with iconv)") from None


def _special_policy(args: argparse.Namespace) -> SpecialTokenPolicy:
    if args.ordinary:
        return ORDINARY_POLICY
    allowed = args.allowed_special
    return SpecialTokenPolicy(allowed="all" if "all" in allowed else frozenset(allowed))


def run_encode(args: argparse.Namespace) -> int:
    if args.chat:
        return run_encode_chat(args, _service(args))
    tokens = _service(args).encode(args.model, [_input_text(args)], special=_special_policy(args)).ids[0]
    print(json.dumps(tokens) if args.json else " ".join(map(str, tokens)))
    return 0


def run_count(args: argparse.Namespace) -> int:
    if args.chat:
        return run_count_chat(args, _service(args))
    print(_service(args).count(args.model, [_input_text(args)], special=_special_policy(args)).total)
    return 0


def parse_token_ids(text: str) -> list[int]:
    """Ids as whitespace-separated integers or a JSON list of integers."""
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            tokens = json.loads(stripped)
            if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
                raise ValueError("the JSON list must hold only integers")
            return tokens
        return [int(part) for part in stripped.split()]
    except (ValueError, RecursionError) as error:  # RecursionError: JSON nested past the parser's depth
        reason = error if isinstance(error, ValueError) else "the JSON nests too deeply"
        raise UsageError(
            f"cannot read token ids ({reason}): give integers separated by spaces, e.g. '15339 1917', or a JSON list"
        ) from None


def run_decode(args: argparse.Namespace) -> int:
    tokens = parse_token_ids(args.ids if args.ids is not None else sys.stdin.read())
    service = _service(args)
    if args.errors == "raw":
        sys.stdout.buffer.write(service.decode(args.model, [tokens], output="bytes").results[0])
    else:
        sys.stdout.write(service.decode(args.model, [tokens], errors=args.errors).results[0])
    sys.stdout.flush()
    return 0
