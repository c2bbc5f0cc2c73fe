"""`tokend train`: train a byte-level BPE model on text files and publish it (atomically) to a registry.

    tokend train --input corpus/alice29.txt --vocab-size 2048 --pattern gpt4 \\
        --special '<|endoftext|>' --name alice_2k --version 1 --registry models/

The result is stored as a minbpe `.model` payload (merges + pattern + special tokens). The manifest's
provenance records the exact command line, the SHA-256 and size of every input and the settings, so the
model can be reproduced (training is deterministic for the same inputs and settings). Special tokens given
as `TOKEN` get ids from `--vocab-size` upwards; `TOKEN=ID` picks the id.

`--output DIR` writes the version directory (manifest + payload) without publishing, for review and a
later `tokend registry publish DIR --registry ...`. Not handled: resuming an interrupted training.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from tokend.cli.arguments import UsageError, parse_special_tokens, resolve_pattern
from tokend.cli.progress import ProgressBar


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a BPE model on text files and publish it",
        description="Train a byte-level BPE model on UTF-8 text files and publish it atomically to a registry\n"
        "(or write it to --output). The manifest records the exact command, input hashes and settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  tokend train --input book.txt --vocab-size 1024 --name mine --registry models/",
    )
    parser.add_argument("--input", metavar="FILE", nargs="+", required=True, help="UTF-8 text files to train on")
    parser.add_argument("--vocab-size", type=int, required=True, help="number of mergeable tokens (>= 256)")
    parser.add_argument(
        "--pattern", default="gpt4", help="split pattern: gpt2, gpt4 (= cl100k), o200k, or a regex (default: gpt4)"
    )
    parser.add_argument(
        "--special", metavar="TOKEN[=ID]", nargs="+", default=[], help="special tokens (ids from --vocab-size up)"
    )
    parser.add_argument("--name", required=True, help="model name, e.g. alice_2k")
    parser.add_argument("--version", type=int, default=None, help="version to publish (default: latest + 1)")
    parser.add_argument("--description", default="", help="free text stored in the manifest")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--registry", metavar="DIR", help="registry directory to publish into (created if missing)")
    target.add_argument("--output", metavar="DIR", help="write the version directory here instead of publishing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tokend.engine import MinbpeModel, dump_minbpe_model, train
    from tokend.registry import Registry, describe_payload
    from tokend.registry.atomic_files import sha256_hex
    from tokend.registry.manifest import validate_model_name

    if args.vocab_size < 256:
        raise UsageError(f"--vocab-size {args.vocab_size} is too small: byte-level BPE needs at least 256")
    if args.version is not None and args.version < 1:
        raise UsageError(f"--version {args.version}: versions are positive integers")
    try:
        validate_model_name(args.name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    pattern = resolve_pattern(args.pattern)
    special_tokens = parse_special_tokens(args.special, first_free_id=args.vocab_size)
    texts, inputs = [], []
    for name in args.input:
        data = Path(name).read_bytes()
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise UsageError(f"--input {name} is not UTF-8 text ({error}); convert it first") from None
        inputs.append({"path": name, "sha256": sha256_hex(data), "size": len(data)})

    bar = None if args.quiet else ProgressBar("merges", stream=sys.stderr)
    result = train(texts, args.vocab_size, pattern=pattern, special_tokens=special_tokens, name=args.name, progress=bar)
    if bar is not None:
        bar.finish()
    # Store exactly what the trained Encoding uses, so loading the payload gives the same ids.
    encoding = result.encoding
    payload = dump_minbpe_model(
        MinbpeModel(pattern=encoding.pattern, special_tokens=dict(encoding.special_tokens), merges=result.merges)
    )
    import tokend.cli.main as cli_main

    provenance = {
        "kind": "trained",
        "command": shlex.join(["tokend", *getattr(args, "argv", [])]),
        "tool": f"tokend {cli_main.tokend_version()}",
        "inputs": inputs,
        "settings": {
            "vocab_size": args.vocab_size,
            "pattern": args.pattern,
            "special_tokens": special_tokens,
            "trainer": "tokend.engine.train",
        },
    }
    if args.output is not None:
        new = describe_payload(
            name=args.name,
            version=args.version or 1,
            payload_format="minbpe_model",
            stored=payload.encode("utf-8"),
            description=args.description,
            provenance=provenance,
        )
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / new.manifest.payload.path).write_bytes(new.stored)
        (out / "manifest.json").write_bytes(new.manifest.to_json_bytes())
        print(f"wrote {new.manifest.ref} ({new.manifest.n_vocab} tokens) to {out}")
        return 0
    registry = Registry.open(args.registry, create=True)
    manifest = registry.publish(
        args.name,
        version=args.version,
        payload=payload.encode("utf-8"),
        payload_format="minbpe_model",
        description=args.description,
        provenance=provenance,
    )
    print(f"published {manifest.ref} ({manifest.n_vocab} tokens, sha256 {manifest.payload.sha256}) to {registry.location}")
    return 0
