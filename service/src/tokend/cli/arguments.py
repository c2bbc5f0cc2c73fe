"""Argument helpers shared by the `tokend` commands: registry location, patterns, special tokens.

    >>> parse_special_tokens(["<|endoftext|>", "<|pad|>=4097"], first_free_id=4096)
    {'<|endoftext|>': 4096, '<|pad|>': 4097}

`UsageError` is a mistake in the command line (exit status 2, like argparse's own errors);
`CommandFailed` and errors from the registry and engine (`TokendError`) exit with status 1. Not handled: reading config files.
"""

from __future__ import annotations

import argparse
import os

from tokend.engine.patterns import PATTERNS

REGISTRY_ENV = "TOKEND_REGISTRY"


class UsageError(Exception):
    """A command-line mistake (exit status 2); the message says how to fix the call."""


class CommandFailed(Exception):
    """The command could not do its job for a reason the message explains (exit status 1)."""


def add_registry_argument(parser: argparse.ArgumentParser, *, required: bool = False, help_suffix: str = "") -> None:
    if required:
        parser.add_argument(
            "--registry", metavar="DIR", required=True,
            help="registry directory to publish into (created if missing)" + help_suffix,
        )
    else:
        parser.add_argument(
            "--registry", metavar="LOCATION", default=os.environ.get(REGISTRY_ENV) or None,
            help="registry directory or http(s):// URL (default: $TOKEND_REGISTRY, else the embedded default "
            "registry)" + help_suffix,
        )
        parser.add_argument(
            "--cache-dir", metavar="DIR", default=None,
            help="where an http(s) registry's verified files are cached (default: ~/.cache/tokend/http/...)",
        )


def resolve_pattern(value: str) -> str:
    """`gpt2`, `gpt4`, `o200k` (named patterns) or a regex, which must compile with the `regex` module."""
    if value in PATTERNS:
        return PATTERNS[value]
    import regex

    from tokend.engine.splitting.pattern_bounds import PatternTooComplex, check_pattern_bounds

    try:
        check_pattern_bounds(value)  # before the regex module's parser, which recurses once per nested group
        regex.compile(value)
    except PatternTooComplex as error:
        raise UsageError(f"--pattern: {error}") from None
    except regex.error as error:
        raise UsageError(
            f"--pattern {value[:200]!r} is neither one of {', '.join(sorted(PATTERNS))} nor a valid regex: {error}"
        ) from None
    return value


def parse_special_tokens(values: list[str] | None, *, first_free_id: int) -> dict[str, int]:
    """`TOKEN` (next free id from `first_free_id`) or `TOKEN=ID` (an ID of `first_free_id` or more), in order;
    duplicates are refused."""
    special_tokens: dict[str, int] = {}
    next_id = first_free_id
    for value in values or []:
        token, separator, id_text = value.rpartition("=")
        if not separator or not id_text.isdigit() or not token:
            token, token_id = value, None
        else:
            token_id = int(id_text)
        if not token:
            raise UsageError("--special needs a non-empty token such as '<|endoftext|>' or '<|endoftext|>=100257'")
        if token in special_tokens:
            raise UsageError(f"special token {token!r} is given twice")
        if token_id is None:
            while next_id in special_tokens.values():
                next_id += 1
            token_id = next_id
            next_id += 1
        if token_id in special_tokens.values():
            raise UsageError(f"special token id {token_id} is given twice")
        if token_id < first_free_id:
            raise UsageError(
                f"--special {value!r}: id {token_id} is inside the trained vocabulary (< {first_free_id}); "
                f"give an id of {first_free_id} or more, or only the token"
            )
        special_tokens[token] = token_id
    return special_tokens
