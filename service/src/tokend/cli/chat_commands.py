"""The command line's chat parts: `tokend encode|count --chat`, and chat formats for `tokend registry`.

    $ echo '{"messages": [{"role": "user", "content": "Hi"}]}' | tokend count --chat --model o200k_base
    12
    $ tokend encode --chat --model qwen3 --registry models/ < chat.json          # [151644, 872, ...]
    $ tokend registry import llama.tiktoken --name llama3 --pattern gpt4 --special ... --chat-format llama3 --registry models/
    $ tokend registry import ranks.tiktoken ... --chat-template tokenizer_config.json --chat-template-name tool_use
    $ tokend registry chat-format qwen3@1 --chat-format chatml --chat-option enable_thinking=false --registry models/

stdin (or `--text`) holds one JSON object: `{"messages": [...], "tools": [...], "add_generation_prompt": true}`
(only "messages" is required). `encode --chat` prints the ids as a JSON array, `count --chat` the total;
with `--json` both print the whole result (text and per-message spans or counts). A chat format is a
built-in (`--chat-format NAME`, options as `--chat-option KEY=VALUE`, VALUE read as JSON when it parses)
or a Jinja2 template (`--chat-template FILE`: the template itself, or a tokenizer_config.json whose
"chat_template" and special tokens are taken; `--chat-variable KEY=VALUE` sets e.g. bos_token for a bare
template). Adding a chat format to a published model is a new version (`tokend registry chat-format`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tokend.cli.arguments import UsageError, add_registry_argument

__all__ = ["add_chat_format_arguments", "chat_format_spec", "add_chat_format_parser", "run_encode_chat", "run_count_chat",
           "add_chat_arguments"]

_CHAT_FIELDS = ("messages", "tools", "add_generation_prompt")


# -- encode / count --chat ------------------------------------------------------------------------------


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    """`--chat` and its options, on `tokend encode` and `tokend count`."""
    parser.add_argument(
        "--chat", action="store_true",
        help='read one JSON object {"messages": [...], "tools": [...], "add_generation_prompt": true} and use the '
        "model's chat format (the prompt tokens of the conversation, special tokens included)",
    )  # fmt: skip
    parser.add_argument(
        "--content-special-tokens", choices=["reference", "text", "refuse"], default=None,
        help="with --chat: special-token text inside messages as the format's reference renderer treats it "
        "(default), always as text, or an error",
    )  # fmt: skip


def _conversation(args: argparse.Namespace) -> Any:
    from tokend.service import ChatConversation

    if args.allowed_special or args.ordinary:
        raise UsageError("--allowed-special and --ordinary apply to text; with --chat use --content-special-tokens")
    if args.text is not None:
        raw = args.text
    else:
        data = sys.stdin.buffer.read()
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UsageError(f"stdin is not UTF-8 ({error})") from None
    try:
        request = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise UsageError(f'the chat is not JSON ({error}); give {{"messages": [{{"role": "user", "content": "Hi"}}]}}') from None
    if not isinstance(request, dict) or "messages" not in request:
        raise UsageError('the chat must be a JSON object with "messages" (and optionally "tools", "add_generation_prompt")')
    unknown = sorted(set(request) - set(_CHAT_FIELDS))
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(unknown)} in the chat; accepted: {', '.join(_CHAT_FIELDS)}")
    return ChatConversation(request["messages"], request.get("tools"), request.get("add_generation_prompt", True))


def run_encode_chat(args: argparse.Namespace, service: Any) -> int:
    conversation = _conversation(args)
    result = service.encode_chat(args.model, [conversation], content_special_tokens=args.content_special_tokens or "reference").results[0]
    if args.json:
        print(json.dumps({"ids": result.ids, "text": result.text, "message_spans": result.message_spans,
                          "spans_exact": result.spans_exact}, ensure_ascii=False))  # fmt: skip
    else:
        print(json.dumps(result.ids))
    return 0


def run_count_chat(args: argparse.Namespace, service: Any) -> int:
    conversation = _conversation(args)
    result = service.count_chat(args.model, [conversation], content_special_tokens=args.content_special_tokens or "reference").results[0]
    if args.json:
        print(json.dumps({"total": result.total, "per_message": result.per_message, "spans_exact": result.spans_exact,
                          "estimate": result.estimate}))  # fmt: skip
    else:
        print(result.total)
    return 0


# -- chat formats in the registry -------------------------------------------------------------------------


def add_chat_format_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """`--chat-format NAME | --chat-template FILE` and their options (registry import and chat-format)."""
    from tokend.registry.chat import BUILTIN_CHAT_FORMATS

    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--chat-format", metavar="NAME", choices=sorted(BUILTIN_CHAT_FORMATS),
                       help=f"a built-in chat format: {', '.join(BUILTIN_CHAT_FORMATS)} (docs/chat.md)")
    group.add_argument("--chat-template", metavar="FILE",
                       help="a Jinja2 chat template file, or a tokenizer_config.json (its chat_template and special tokens)")
    parser.add_argument("--chat-option", metavar="KEY=VALUE", action="append", default=[],
                        help="an option of the built-in format, e.g. version=v7 or enable_thinking=false (VALUE as JSON if it parses)")
    parser.add_argument("--chat-template-name", metavar="NAME",
                        help="a tokenizer_config.json with several templates: which one (default: 'default')")
    parser.add_argument("--chat-variable", metavar="KEY=VALUE", action="append", default=[],
                        help="a template variable, e.g. bos_token='<s>' (a bare template file has no special-token map)")


def chat_format_spec(args: argparse.Namespace) -> Any:
    """The checked ChatFormatSpec the arguments describe, or None without --chat-format / --chat-template."""
    from tokend.registry.chat import builtin_chat_format, chat_format_from_template, chat_format_from_tokenizer_config

    if args.chat_format is None and args.chat_template is None:
        for flag, value in (("--chat-option", args.chat_option), ("--chat-template-name", args.chat_template_name),
                            ("--chat-variable", args.chat_variable)):  # fmt: skip
            if value:
                raise UsageError(f"{flag} needs --chat-format or --chat-template")
        return None
    if args.chat_format is not None:
        if args.chat_template_name or args.chat_variable:
            raise UsageError("--chat-template-name and --chat-variable go with --chat-template")
        return builtin_chat_format(args.chat_format, **_pairs(args.chat_option, "--chat-option"))
    if args.chat_option:
        raise UsageError("--chat-option goes with --chat-format (a template takes --chat-variable)")
    path = Path(args.chat_template)
    data = path.read_bytes()
    config = _json_object(data)
    if config is not None and "chat_template" in config:
        if args.chat_variable:
            raise UsageError("--chat-variable: a tokenizer_config.json brings its own special tokens")
        return chat_format_from_tokenizer_config(data, template_name=args.chat_template_name or "default")
    if args.chat_template_name:
        raise UsageError(f"--chat-template-name picks a template of a tokenizer_config.json; {path.name} is a bare template")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text ({error})") from None
    variables = _pairs(args.chat_variable, "--chat-variable")
    return chat_format_from_template(text, source=path.name, **variables)


def _json_object(data: bytes) -> dict | None:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _pairs(values: list[str], flag: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for value in values:
        key, separator, text = value.partition("=")
        if not separator or not key:
            raise UsageError(f"{flag} {value!r}: give KEY=VALUE")
        try:
            pairs[key] = json.loads(text)
        except ValueError:
            pairs[key] = text
    return pairs


def add_chat_format_parser(commands: Any) -> None:
    """`tokend registry chat-format REF (--chat-format NAME | --chat-template FILE | --none)`."""
    parser = commands.add_parser(
        "chat-format", help="publish a model again with a chat format (a new version)",
        description="Publish the payload of REF again, as the next version of its name, with the given chat format "
        "(published versions are immutable, so this is how a model gets one). --none publishes it without one.",
    )  # fmt: skip
    parser.add_argument("ref", metavar="REF", help="the version to start from: name, name@version or name@alias")
    add_registry_argument(parser, required=True)
    add_chat_format_arguments(parser)
    parser.add_argument("--none", action="store_true", help="publish without a chat format")
    parser.add_argument("--description", help="the new version's description (default: REF's)")
    parser.set_defaults(handler=run_chat_format)


def run_chat_format(args: argparse.Namespace) -> int:
    from tokend.registry import Registry

    spec = chat_format_spec(args)
    if (spec is None) == (not args.none):
        raise UsageError("give one of --chat-format NAME, --chat-template FILE or --none")
    registry = Registry.open(args.registry)
    source = registry.resolve(args.ref)
    manifest = registry.publish_chat_format(str(source), spec, description=args.description)
    described = spec.describe() if spec is not None else "no chat format"
    print(f"published {manifest.ref} ({described}; the payload of {source}) to {registry.location}")
    return 0
