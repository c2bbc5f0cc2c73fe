"""What each payload format holds and how its (verified) bytes become an `Encoding`.

| payload_format | file | from the manifest | from the payload |
|---|---|---|---|
| `tiktoken_ranks` | ranks.tiktoken | pattern, special tokens | ranks |
| `minbpe_model` | merges.model | (repeats them) | pattern, special tokens, merges |
| `hf_tokenizer_json` | tokenizer.json | (repeats them) | everything, incl. normalizer, BOS/EOS |
| `tekken_json` | tekken.json | (repeats them) | everything, incl. BOS/EOS |
| `sentencepiece_model` | tokenizer.model | (repeats them; pattern "") | everything (a `SentencePieceEncoding`), incl. family, normalizer name, BOS/EOS/UNK/PAD |

The self-describing formats repeat their pattern, special tokens and normalizer in the manifest (so a
reader of the manifest alone sees them), SentencePiece also its family; the loader checks that both agree.
A sentencepiece `.model` is stored as the file itself (what `spm_train` or the GGUF importer wrote), so the
stored artifact is exactly what sentencepiece loads; its special tokens are its CONTROL and UNKNOWN pieces
and its family `sentencepiece-bpe` or `sentencepiece-unigram`. An empty minbpe pattern line
(BasicTokenizer: no pre-splitting) means the whole text is one piece, `NO_SPLIT_PATTERN`.

    parsed = parse_payload("tekken_json", content, name="nemo")    # content: tekken.json's bytes
    parsed.encoding.n_vocab, parsed.bos_token                       # (131072, '<s>')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokend.engine import (
    Encoding,
    load_minbpe_model,
    load_tiktoken_ranks,
    merges_to_ranks,
    read_tekken_json,
    read_tokenizer_json,
)
from tokend.engine.training import NO_SPLIT_PATTERN
from tokend.errors import ModelFormatError
from tokend.registry.manifest import PayloadFormat

if TYPE_CHECKING:  # imported when a sentencepiece payload loads: its protobuf module costs every start otherwise
    from tokend.engine.sentencepiece import SentencePieceEncoding

__all__ = ["PAYLOAD_FILE_NAMES", "SELF_DESCRIBING", "ParsedPayload", "parse_payload", "minbpe_pattern"]

PAYLOAD_FILE_NAMES: dict[PayloadFormat, str] = {
    "tiktoken_ranks": "ranks.tiktoken",
    "minbpe_model": "merges.model",
    "hf_tokenizer_json": "tokenizer.json",
    "tekken_json": "tekken.json",
    "sentencepiece_model": "tokenizer.model",
}
# Formats whose payload carries its own pattern and special tokens.
SELF_DESCRIBING: frozenset[PayloadFormat] = frozenset(
    {"minbpe_model", "hf_tokenizer_json", "tekken_json", "sentencepiece_model"}
)


@dataclass(frozen=True)
class ParsedPayload:
    encoding: Encoding | SentencePieceEncoding
    pattern: str
    special_tokens: dict[str, int]
    normalizer: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    family: str | None = None  # the manifest's `family` (None: byte-level BPE, the default)
    unk_token: str | None = None
    pad_token: str | None = None


def parse_payload(
    payload_format: PayloadFormat,
    content: bytes,
    *,
    name: str,
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
    explicit_n_vocab: int | None = None,
) -> ParsedPayload:
    """The Encoding in `content`. `pattern`, `special_tokens` and `explicit_n_vocab` complete a
    tiktoken rank file (which has none of them); the other formats bring their own."""
    if payload_format == "tiktoken_ranks":
        if pattern is None:
            raise ModelFormatError(f"a tiktoken rank file has no split pattern: give one for {name} (e.g. --pattern gpt4)")
        ranks = load_tiktoken_ranks(content, what=f"rank file of {name}")
        encoding = Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=dict(special_tokens or {}),
                            explicit_n_vocab=explicit_n_vocab)
        return ParsedPayload(encoding, pattern, dict(special_tokens or {}))
    if payload_format == "minbpe_model":
        model = load_minbpe_model(_utf8(content, what=name))
        pattern = minbpe_pattern(model.pattern)
        encoding = Encoding(name, pat_str=pattern, mergeable_ranks=merges_to_ranks(model.merges),
                            special_tokens=dict(model.special_tokens), explicit_n_vocab=explicit_n_vocab)
        return ParsedPayload(encoding, pattern, dict(model.special_tokens))
    if payload_format == "sentencepiece_model":
        return _sentencepiece(content, name=name, pattern=pattern, special_tokens=special_tokens)
    if payload_format == "hf_tokenizer_json":
        parsed = read_tokenizer_json(content, name=name)
    elif payload_format == "tekken_json":
        parsed = read_tekken_json(content, name=name)
    else:
        raise ModelFormatError(f"{name}: unknown payload format {payload_format!r}")
    encoding = Encoding.from_model(parsed.model)
    return ParsedPayload(encoding, encoding.pattern, dict(encoding.special_tokens), parsed.model.normalizer,
                         parsed.bos_token, parsed.eos_token)


def _sentencepiece(content: bytes, *, name: str, pattern: str | None, special_tokens: dict[str, int] | None) -> ParsedPayload:
    from tokend.engine.sentencepiece import SentencePieceEncoding

    encoding = SentencePieceEncoding.from_model_file(name, content)
    if pattern:
        raise ModelFormatError(f"a sentencepiece model has no split pattern: do not pass one for {name}")
    if special_tokens and dict(special_tokens) != dict(encoding.special_tokens):
        raise ModelFormatError(
            f"the sentencepiece model for {name} defines its own special tokens (its CONTROL and UNKNOWN pieces); "
            "do not pass different ones"
        )
    model = encoding.model

    def piece(token_id: int | None) -> str | None:
        return None if token_id is None else model.pieces[token_id]

    return ParsedPayload(encoding, "", dict(encoding.special_tokens), encoding.normalizer_name or None,
                         piece(encoding.bos_id), piece(encoding.eos_id), encoding.algorithm,
                         piece(encoding.unk_id), piece(encoding.pad_id))


def minbpe_pattern(pattern: str) -> str:
    """The split regex a minbpe model means: its pattern, or no splitting for an empty one (BasicTokenizer)."""
    return pattern or NO_SPLIT_PATTERN


def _utf8(content: bytes, *, what: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"minbpe model of {what} is not UTF-8 text: {error}") from None
