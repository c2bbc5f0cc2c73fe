"""Importing tokenizer files into a registry: every format a user may hand us, to a payload and a manifest.

| format | files | stored payload |
|---|---|---|
| `tiktoken` | a rank file (optionally .gz) | the file as given (`tiktoken_ranks`) |
| `minbpe` | a minbpe `.model` | the file as given (`minbpe_model`) |
| `gpt2` | GPT-2's `encoder.json` + `vocab.bpe` | their tiktoken ranks, gzipped (`tiktoken_ranks`); the manifest's provenance holds both files' SHA-256 |
| `hf` | a Hugging Face `tokenizer.json` (optionally .gz) | the file as given (`hf_tokenizer_json`) |
| `tekken` | Mistral's `tekken.json` (optionally .gz) | the file as given (`tekken_json`) |
| `sentencepiece` | a sentencepiece `.model` (optionally .gz) | the file as given (`sentencepiece_model`) |
| `gguf` | a GGUF file (llama.cpp) | "gpt2" vocabularies: the tokenizer as a tokenizer.json, gzipped (`hf_tokenizer_json`); "llama" ones: a sentencepiece `.model` (`sentencepiece_model`); provenance: the GGUF's SHA-256 and what the conversion read (`pre`, ...) |

Without `format`, it is told from the files: two files are GPT-2's, the GGUF magic a GGUF, a `minbpe v`
line a minbpe model, any other `.model` file (`.model.v3` too) a sentencepiece model (a binary ModelProto),
a JSON object with `model` a tokenizer.json and with `config` + `vocab` a tekken.json; anything else is
read as a tiktoken rank file. `expected_sha256` checks a GGUF file itself (its payload is what the conversion makes of it).

    manifest = import_files(registry, [Path("tokenizer.json")], name="llama3",
                            provenance={"kind": "imported", "command": "..."})
    manifest.payload_format, manifest.bos_token    # ('hf_tokenizer_json', '<|begin_of_text|>')

Not handled: fetching files (give paths on disk), a model's tokenizer_config.json (pass --bos-token /
--eos-token where the tokenizer.json does not name them).
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tokend.engine import GPT2_PATTERN, OPENAI_ENCODINGS, dump_tiktoken_ranks, read_gpt2_files
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.chat.spec import ChatFormatSpec
from tokend.registry.manifest import Compression, Manifest, PayloadFormat

__all__ = ["FORMATS", "ImportSource", "detect_format", "import_files", "read_import"]

ImportFormat = Literal["tiktoken", "minbpe", "gpt2", "hf", "tekken", "sentencepiece", "gguf"]
FORMATS: tuple[ImportFormat, ...] = ("tiktoken", "minbpe", "gpt2", "hf", "tekken", "sentencepiece", "gguf")
_GZIP_MAGIC = b"\x1f\x8b"
_GGUF_MAGIC = b"GGUF"
# NAME.model, also with a version suffix as mistral-common names its files (tokenizer.model.v3), and .gz
_MODEL_FILE = re.compile(r"\.model(\.v\d+)?(\.gz)?$")


@dataclass(frozen=True)
class ImportSource:
    """What `Registry.publish` needs for imported files (everything but name, version and description)."""

    payload: bytes
    payload_format: PayloadFormat
    compression: Compression = "none"
    pattern: str | None = None
    special_tokens: dict[str, int] | None = None
    explicit_n_vocab: int | None = None
    expected_content_sha256: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    chat_template: str | None = None
    chat_format: ChatFormatSpec | None = None  # the file's own chat format (GGUF: its checked template)
    chat_format_problem: str | None = None  # why the file's template did not become the chat format
    provenance: dict[str, Any] = field(default_factory=dict)  # source, source_sha256, sources, settings


def import_files(
    registry,
    paths: Sequence[Path],
    *,
    name: str,
    version: int | None = None,
    format: ImportFormat | None = None,
    like: str | None = None,
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
    expected_sha256: str | None = None,
    bos_token: str | None = None,
    eos_token: str | None = None,
    share_payload_with: str | None = None,
    description: str = "",
    provenance: dict[str, Any],
    chat_format: ChatFormatSpec | None = None,
) -> Manifest:
    """Read `paths` (`read_import`) and publish them into `registry` as `name@version` (None: next).
    `chat_format` replaces the file's own (a GGUF file's template); a file template that does not check is
    recorded in the provenance's settings as `chat_template_not_used` (the import goes on without it)."""
    source = read_import(paths, format=format, like=like, pattern=pattern, special_tokens=special_tokens,
                         expected_sha256=expected_sha256)
    merged = dict(provenance)
    merged.update(source.provenance)
    merged["settings"] = {**source.provenance.get("settings", {}), **provenance.get("settings", {})}
    if chat_format is None and source.chat_format_problem is not None:
        merged["settings"]["chat_template_not_used"] = source.chat_format_problem
    return registry.publish(
        name,
        version=version,
        payload=source.payload,
        payload_format=source.payload_format,
        compression=source.compression,
        pattern=source.pattern,
        special_tokens=source.special_tokens,
        explicit_n_vocab=source.explicit_n_vocab,
        expected_content_sha256=source.expected_content_sha256,
        description=description,
        provenance=merged,
        bos_token=bos_token if bos_token is not None else source.bos_token,
        eos_token=eos_token if eos_token is not None else source.eos_token,
        chat_template=source.chat_template,
        share_payload_with=share_payload_with,
        chat_format=chat_format if chat_format is not None else source.chat_format,
    )


def read_import(
    paths: Sequence[Path],
    *,
    format: ImportFormat | None = None,
    like: str | None = None,
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
    expected_sha256: str | None = None,
) -> ImportSource:
    """The payload and manifest fields for the files at `paths` (ModelFormatError names what is wrong).

    `like` (tiktoken rank files and GPT-2 files): an OpenAI encoding whose pattern, special tokens and
    published SHA-256 apply. `pattern` / `special_tokens` complete a tiktoken rank file (or replace
    the GPT-2 defaults); the other formats bring their own.
    """
    paths = [Path(path) for path in paths]
    format = format or detect_format(paths)
    if format != "gpt2" and len(paths) != 1:
        raise ModelFormatError(f"the {format} format is one file; got {len(paths)}")
    if format not in ("tiktoken", "gpt2") and (like or pattern is not None or special_tokens is not None):
        raise ModelFormatError(f"a {format} file brings its own pattern and special tokens: drop --like/--pattern/--special")
    if format == "gpt2":
        return _gpt2(paths, like=like, pattern=pattern, special_tokens=special_tokens)
    path = paths[0]
    if format == "gguf":
        return _gguf(path, expected_sha256=expected_sha256)
    stored = path.read_bytes()
    compression: Compression = "gzip" if stored.startswith(_GZIP_MAGIC) else "none"
    provenance = {"source": path.name, "source_sha256": sha256_hex(stored)}
    payload_format: PayloadFormat = {"tiktoken": "tiktoken_ranks", "minbpe": "minbpe_model", "hf": "hf_tokenizer_json",
                                     "tekken": "tekken_json", "sentencepiece": "sentencepiece_model"}[format]
    explicit_n_vocab = None
    if like:
        spec = _openai(like)
        pattern = pattern or spec.pattern
        special_tokens = special_tokens if special_tokens is not None else dict(spec.special_tokens)
        expected_sha256 = expected_sha256 or spec.rank_file_sha256
        explicit_n_vocab = spec.explicit_n_vocab
        provenance["settings"] = {"like": like}
    if format == "tiktoken" and pattern is None:
        raise ModelFormatError("a tiktoken rank file has no split pattern: pass --pattern gpt4|o200k|gpt2|REGEX or --like")
    return ImportSource(stored, payload_format, compression, pattern, special_tokens, explicit_n_vocab,
                        expected_sha256, provenance=provenance)


def detect_format(paths: Sequence[Path]) -> ImportFormat:
    """The format of `paths`, told from their names and first bytes."""
    if len(paths) == 2:
        return "gpt2"
    if len(paths) != 1:
        raise ModelFormatError(f"expected one file (or GPT-2's encoder.json and vocab.bpe), got {len(paths)}")
    path = Path(paths[0])
    with open(path, "rb") as file:
        head = file.read(16)  # enough for the GGUF magic and minbpe's version line
    if head[:4] == _GGUF_MAGIC:
        return "gguf"
    data = path.read_bytes() if head[:1] in (b"{", b"\x1f", b" ", b"\n") else head
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, path)
    if _MODEL_FILE.search(path.name):
        # minbpe models are text starting with their version line; sentencepiece's are a binary ModelProto
        return "minbpe" if data.startswith(b"minbpe v") else "sentencepiece"
    if data.lstrip()[:1] == b"{":
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ModelFormatError(f"{path.name} starts like JSON but does not parse: {error}") from None
        except RecursionError:
            raise ModelFormatError(f"{path.name} is JSON nested too deeply to read") from None
        if isinstance(document, dict) and "model" in document:
            return "hf"
        if isinstance(document, dict) and "config" in document and "vocab" in document:
            return "tekken"
        raise ModelFormatError(f"{path.name} is JSON but neither a tokenizer.json nor a tekken.json: pass --format")
    if data.startswith(b"minbpe v"):
        return "minbpe"
    return "tiktoken"


def _openai(like: str):
    try:
        return OPENAI_ENCODINGS[like]
    except KeyError:
        raise ModelFormatError(f"--like {like!r}: known OpenAI encodings are {', '.join(OPENAI_ENCODINGS)}") from None


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ModelFormatError(f"{path.name} looks gzip-compressed but does not decompress: {error}") from None


def _gpt2(paths: list[Path], *, like: str | None, pattern: str | None, special_tokens: dict[str, int] | None) -> ImportSource:
    if len(paths) != 2:
        raise ModelFormatError(f"GPT-2's format is two files, encoder.json and vocab.bpe; got {len(paths)}")
    contents = {path: path.read_bytes() for path in paths}
    encoder = [path for path, data in contents.items() if data.lstrip()[:1] == b"{"]
    if len(encoder) != 1:
        raise ModelFormatError("give GPT-2's encoder.json (a JSON object) and vocab.bpe (merge lines), one each")
    vocab_bpe = next(path for path in paths if path != encoder[0])
    hashes = {"encoder.json": sha256_hex(contents[encoder[0]]), "vocab.bpe": sha256_hex(contents[vocab_bpe])}
    spec = _openai(like) if like else None
    if spec is not None and spec.gpt2_files_sha256 is not None:
        for role, expected in spec.gpt2_files_sha256.items():
            if hashes[role] != expected:
                raise ChecksumMismatchError(expected=expected, actual=hashes[role], what=f"{role} for --like {like}")
    files = read_gpt2_files(contents[encoder[0]], contents[vocab_bpe])
    ranks_file = dump_tiktoken_ranks(files.ranks)
    return ImportSource(
        payload=gzip.compress(ranks_file, compresslevel=9, mtime=0),
        payload_format="tiktoken_ranks",
        compression="gzip",
        pattern=pattern or (spec.pattern if spec else GPT2_PATTERN),
        special_tokens=special_tokens if special_tokens is not None else files.special_tokens,
        explicit_n_vocab=spec.explicit_n_vocab if spec else None,
        expected_content_sha256=spec.rank_file_sha256 if spec else None,
        provenance={
            "source": f"{encoder[0].name} + {vocab_bpe.name}",
            "sources": [{"path": encoder[0].name, "role": "encoder.json", "sha256": hashes["encoder.json"]},
                        {"path": vocab_bpe.name, "role": "vocab.bpe", "sha256": hashes["vocab.bpe"]}],
            "settings": {"format": "gpt2"} | ({"like": like} if like else {}),
        },
    )


def _gguf(path: Path, *, expected_sha256: str | None) -> ImportSource:
    from tokend.registry.gguf_tokenizer import read_gguf_tokenizer

    source_sha256 = _file_sha256(path)  # in chunks: model files run to gigabytes
    if expected_sha256 is not None and source_sha256 != expected_sha256:
        raise ChecksumMismatchError(expected=expected_sha256, actual=source_sha256, what=f"GGUF file {path.name}")
    converted = read_gguf_tokenizer(path)
    # A tokenizer.json is stored gzipped (5 MB of JSON for a 150k vocabulary); a rebuilt .model as it is, so
    # the stored file is what sentencepiece loads.
    compressed = converted.payload_format == "hf_tokenizer_json"
    return ImportSource(
        payload=gzip.compress(converted.payload, compresslevel=6, mtime=0) if compressed else converted.payload,
        payload_format=converted.payload_format,
        compression="gzip" if compressed else "none",
        bos_token=converted.bos_token,
        eos_token=converted.eos_token,
        chat_template=converted.chat_template,
        chat_format=converted.chat_format,
        chat_format_problem=converted.chat_format_problem,
        provenance={"source": path.name, "source_sha256": source_sha256,
                    "settings": {"format": "gguf", **converted.settings}},
    )


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
