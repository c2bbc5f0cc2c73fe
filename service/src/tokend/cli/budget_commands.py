"""`tokend truncate|chunk --max-tokens N --model REF`: token budgets for a text from stdin, a file or --text.

    $ printf 'The quick brown fox jumps' | tokend truncate --max-tokens 3 --model cl100k_base --plain
    The quick brown
    $ tokend truncate --max-tokens 3 --side left --model cl100k_base --text 'The quick brown fox jumps'
    {"model": {"name": "cl100k_base", "version": 1}, "text": " brown fox jumps", "start": 9, ...}
    $ tokend chunk --max-tokens 512 --overlap 64 --prefer sentence --model cl100k_base --file book.txt
    {"model": {...}, "chunks": [{"text": ..., "start": 0, "end": 2710, "token_count": 498, "ids": [...]}, ...]}
    $ tokend chunk --max-tokens 512 --model cl100k_base --file book.txt --jsonl | jq -r .text

Semantics are the engine's (docs/budgets.md): every budget is held on the cut text's own encoding. Input
is taken exactly as given (a trailing newline from `echo` is part of the text). Output is JSON (spans in
characters and UTF-8 bytes of the input); `truncate --plain` writes the kept text itself, with no newline
added; `chunk --jsonl` writes one chunk per line as it is made. Special tokens as in `tokend encode`. Not
handled: several texts per call (use the gRPC service's batches).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tokend.cli.arguments import UsageError
from tokend.cli.token_commands import _add_model_arguments, _service, _special_policy


def add_parsers(subparsers: Any) -> None:
    truncate = subparsers.add_parser(
        "truncate", help="keep the longest prefix (or suffix) of a text that fits N tokens",
        description="Keep the longest prefix (--side right) or suffix (--side left) of the text whose own encoding "
        "has at most --max-tokens tokens. Prints JSON, or the kept text with --plain.",
    )  # fmt: skip
    _add_common(truncate)
    truncate.add_argument("--side", choices=["right", "left"], default="right",
                          help="right: keep the beginning (default); left: keep the end")  # fmt: skip
    truncate.add_argument("--plain", action="store_true", help="write the kept text itself instead of JSON")
    truncate.set_defaults(handler=run_truncate)

    chunk = subparsers.add_parser(
        "chunk", help="cut a text into chunks of at most N tokens",
        description="Cut the text into consecutive chunks whose own encodings have at most --max-tokens tokens "
        "each, cut at the preferred separator where the budget allows. Prints JSON.",
    )  # fmt: skip
    _add_common(chunk)
    chunk.add_argument("--overlap", type=int, default=0, metavar="K", help="tokens shared by neighbouring chunks (default 0)")
    chunk.add_argument(
        "--prefer", choices=["paragraph", "sentence", "whitespace", "token"], default="paragraph",
        help="where to cut first: after a blank line (default), after a sentence, before a word, or anywhere",
    )  # fmt: skip
    chunk.add_argument("--jsonl", action="store_true", help="one JSON object per chunk and line, written as each is made")
    chunk.set_defaults(handler=run_chunk)


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--max-tokens", "-n", type=int, required=True, metavar="N", help="the token budget")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", help="use this text instead of reading stdin")
    source.add_argument("--file", metavar="PATH", help="read the text from this UTF-8 file instead of stdin")
    special = parser.add_mutually_exclusive_group()
    special.add_argument(
        "--allowed-special", metavar="TOKEN", nargs="+", default=[],
        help="special tokens to encode as such ('all' for every one); others in the text are an error",
    )  # fmt: skip
    special.add_argument("--ordinary", action="store_true", help="treat special-token text as plain text")


def _text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.file is not None:
        with open(args.file, "rb") as file:
            data = file.read()
        where = args.file
    else:
        data, where = sys.stdin.buffer.read(), "stdin"
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{where} is not UTF-8 text ({error}); convert it first (e.g. with iconv)") from None


def _model(result: Any) -> dict[str, Any]:
    return {"name": result.model.name, "version": result.model.version}


def run_truncate(args: argparse.Namespace) -> int:
    truncated = _service(args).truncate(
        args.model, [_text(args)], args.max_tokens, args.side, special=_special_policy(args)
    )
    kept = truncated.results[0]
    if args.plain:
        sys.stdout.write(kept.text)
    else:
        print(json.dumps({
            "model": _model(truncated), "text": kept.text, "start": kept.start, "end": kept.end,
            "byte_start": kept.byte_start, "byte_end": kept.byte_end, "token_count": len(kept.ids),
            "total_tokens": kept.total_tokens, "truncated": len(kept.ids) < kept.total_tokens, "ids": kept.ids,
        }, ensure_ascii=False))  # fmt: skip
    sys.stdout.flush()
    return 0


def run_chunk(args: argparse.Namespace) -> int:
    stream = _service(args).chunk_stream(
        args.model, _text(args), args.max_tokens, args.overlap, args.prefer, special=_special_policy(args)
    )
    if args.jsonl:
        for chunk in stream:
            print(json.dumps(_chunk(chunk), ensure_ascii=False))
    else:
        print(json.dumps({"model": _model(stream), "chunks": [_chunk(chunk) for chunk in stream]}, ensure_ascii=False))
    sys.stdout.flush()
    return 0


def _chunk(chunk: Any) -> dict[str, Any]:
    return {
        "text": chunk.text, "start": chunk.start, "end": chunk.end, "byte_start": chunk.byte_start,
        "byte_end": chunk.byte_end, "token_count": len(chunk.ids), "ids": chunk.ids,
    }  # fmt: skip
