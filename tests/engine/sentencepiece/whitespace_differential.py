"""A differential check of tokend's SentencePiece family against `sentencepiece` over the trainer options that
decide where the whitespace mark "▁" goes: `treat_whitespace_as_suffix`, `add_dummy_prefix`,
`remove_extra_whitespaces`, `split_by_whitespace`, `allow_whitespace_only_pieces`, plus `byte_fallback`,
for BPE and Unigram models trained here (alice29.txt, identity normalizer; a second or less each).

    >>> from tests.engine.sentencepiece.whitespace_differential import Options, compare
    >>> compare(Options(suffix=True), ["Hello  world "])   # [] when tokend agrees with sentencepiece
    []

`compare(options, texts)` returns one line per disagreement, and counts the cases in `CASES` (a Counter by
operation): encode ids, decode, offsets, truncate (both sides, several budgets) and chunk (two budgets,
overlap 0 and 2). The oracle of every operation is `sentencepiece` itself:
- ids and decoded text: `encode(text)` and `decode(ids)`;
- offsets: the byte spans `encode(text, return_type="proto")` gives each piece (`begin`, `end` into the
  UTF-8 of the input; a dummy "▁" spans nothing). Byte pieces: sentencepiece gives the whole character to
  the last piece of it and empty spans to the others, tokend each piece its own byte; held to that.
- cut points (where truncate and chunk may cut): after each piece whose proto `surface` is not a part of a
  character (a byte piece that does not end a character has an empty surface);
- truncate and chunk: the definitions of tokend.engine.truncation / chunking with `sentencepiece.encode` as
  the encoder of record (a kept text's ids ARE sentencepiece's ids of that text, within the budget, cut on
  a cut point, maximal).
A text "spells" its tokens when sentencepiece's normalizer only escaped its spaces and added the dummy
mark: `normalize(text)` is the text with " " as "▁" plus one "▁" first (last, with
treat_whitespace_as_suffix) when the model adds one, and no piece is `<unk>`. Those texts must have offsets,
truncations and chunks; for the others tokend may refuse with OffsetsUnavailableError (it must not answer
wrong: when it answers, it is held to the same oracle).
"""

from __future__ import annotations

import io
import random
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import sentencepiece

from tokend.engine.sentencepiece import SentencePieceEncoding
from tokend.errors import InvalidBudgetError, OffsetsUnavailableError

ALICE = Path(__file__).resolve().parents[3] / "corpus" / "alice29.txt"
MARK = "\u2581"
CASES: Counter = Counter()  # operation -> cases compared (all calls of `compare` in this process)
REFUSED: Counter = Counter()  # operation -> cases refused with OffsetsUnavailableError where allowed
TRUNCATE_BUDGETS = (0, 1, 3, 7)
CHUNK_BUDGETS = ((4, 0), (9, 2))  # (max_tokens, overlap)


@dataclass(frozen=True)
class Options:
    """One trainer configuration (identity normalizer; the rest as sentencepiece's trainer names them)."""

    suffix: bool = True  # treat_whitespace_as_suffix
    unigram: bool = False
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = False
    byte_fallback: bool = True
    split_by_whitespace: bool = True
    allow_whitespace_only_pieces: bool = False
    normalizer: str = "identity"  # normalization_rule_name

    def name(self) -> str:
        flags = [key for key, value in asdict(self).items() if value is True and key not in ("suffix", "unigram")]
        kind = ["suffix" if self.suffix else "prefix", "unigram" if self.unigram else "bpe", self.normalizer]
        return "-".join(kind + flags)


def option_matrix(suffix: bool = True) -> list[Options]:
    """Every combination of the boolean options above with the identity normalizer (32 per model type), and
    nmt_nfkc (which rewrites text: NFKC, tabs and newlines to spaces) with and without extra whitespace removal,
    for one whitespace side."""
    matrix = []
    for bits in range(64):
        flags = [bool(bits >> shift & 1) for shift in range(6)]
        matrix.append(Options(suffix, *flags))
    for unigram in (False, True):
        for remove in (False, True):
            matrix.append(Options(suffix, unigram, remove_extra_whitespaces=remove, normalizer="nmt_nfkc"))
    return matrix


@lru_cache(maxsize=None)
def model_bytes(options: Options) -> bytes:
    lines = [line for line in ALICE.read_text(encoding="utf-8").splitlines() if line.strip()][:1000]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=500,
        num_threads=1,
        minloglevel=2,
        model_type="unigram" if options.unigram else "bpe",
        normalization_rule_name=options.normalizer,
        treat_whitespace_as_suffix=options.suffix,
        add_dummy_prefix=options.add_dummy_prefix,
        remove_extra_whitespaces=options.remove_extra_whitespaces,
        byte_fallback=options.byte_fallback,
        split_by_whitespace=options.split_by_whitespace,
        allow_whitespace_only_pieces=options.allow_whitespace_only_pieces,
    )
    return model.getvalue()


@lru_cache(maxsize=None)
def ours(options: Options) -> SentencePieceEncoding:
    return SentencePieceEncoding.from_model_file(options.name(), model_bytes(options))


@lru_cache(maxsize=None)
def oracle(options: Options) -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes(options))


FIXED_TEXTS = (
    "", " ", "  ", "\n", "\t", " \n ", "a", " a", "a ", " a ", "  a  ", "Alice", "Alice was", "Alice  was ",
    " Alice was beginning to get very tired", "the cat\nsat\ton the  mat. ", "\n\nAlice\n\n", "é", " é ",
    "caf\u00e9 na\u00efve", "中文 字", "😀", " 😀 ", "a😀b", "tab\there", "x\u2581y", "\u2581", "  \t  ",
    "end with spaces   ", "   start with spaces",
)
_WORDS = ("Alice", "the", "rabbit", "was", "a", "of", "said", "in", ",", ".", "'", "-", "é", "中", "😀", "42", "\u00a0")
_SPACES = (" ", " ", " ", "  ", "   ", "\n", "\t", " \n", "\n\n", "")


def random_texts(count: int, seed: int) -> list[str]:
    """Texts of words and whitespace runs, spaces at the starts and ends included; every other one of ASCII
    words and single spaces only (which models without byte fallback or with whitespace removal spell)."""
    rng = random.Random(seed)
    texts = []
    for number in range(count):
        plain = number % 2 == 1
        words = _WORDS[:11] if plain else _WORDS
        spaces = (" ", "") if plain else _SPACES
        parts = [rng.choice(spaces) if rng.random() < 0.4 else ""]
        for _ in range(rng.randint(0, 12)):
            parts.append(rng.choice(words))
            parts.append(rng.choice(spaces))
        texts.append("".join(parts))
    return texts


def random_ids(options: Options, count: int, seed: int) -> list[list[int]]:
    """Id sequences of any pieces (whitespace-only, control, <unk>, byte pieces), up to 12 long."""
    processor = oracle(options)
    rng = random.Random(seed)
    marks = [i for i in range(processor.get_piece_size()) if MARK in processor.id_to_piece(i)]
    every = range(processor.get_piece_size())
    return [[rng.choice(marks if rng.random() < 0.4 else every) for _ in range(rng.randint(0, 12))] for _ in range(count)]


def compare_decoding(options: Options, id_lists: list[list[int]]) -> list[str]:
    """Lines naming every id sequence that tokend decodes otherwise than sentencepiece, at once or streamed
    (the stream only over sequences without byte pieces: budgets.md says where it decodes as Python's codec)."""
    enc, processor = ours(options), oracle(options)
    found = []
    for ids in id_lists:
        CASES["decode ids"] += 1
        expected = processor.decode(ids)
        if enc.decode(ids) != expected:
            found.append(f"{options.name()} decode {ids}: {enc.decode(ids)!r} != {expected!r}")
            continue
        if any(processor.is_byte(token) for token in ids):
            continue
        CASES["stream decode"] += 1
        decoder = enc.decoder()
        streamed = "".join(decoder.feed([token]) for token in ids) + decoder.flush()
        if streamed != expected:
            found.append(f"{options.name()} stream decode {ids}: {streamed!r} != {expected!r}")
    return found


def spells(options: Options, text: str) -> bool:
    """sentencepiece's normalizer only escaped the spaces and added the dummy mark, and no piece is <unk>."""
    processor = oracle(options)
    normalized = processor.normalize(text)
    escaped = text.replace(" ", MARK)
    if options.add_dummy_prefix and normalized:
        escaped = escaped + MARK if options.suffix else MARK + escaped
    if MARK in text or normalized != escaped:
        return False
    return processor.unk_id() not in processor.encode(text)


def oracle_cuts(processor, text: str) -> list[int]:
    """Character positions where a piece of sentencepiece's encoding of `text` ends on a character boundary."""
    utf8 = text.encode("utf-8")
    cuts = {0, len(text)}
    for piece in processor.encode(text, return_type="proto").pieces:
        if processor.is_byte(piece.id) and piece.surface == "":
            continue  # a byte piece inside a character
        cuts.add(len(utf8[: piece.end].decode("utf-8")))
    return sorted(cuts)


def compare(options: Options, texts: list[str]) -> list[str]:
    """Lines naming every disagreement between tokend and sentencepiece on `texts` (see the module docstring)."""
    enc, processor = ours(options), oracle(options)
    found: list[str] = []

    def differ(operation: str, text: str, detail: str) -> None:
        found.append(f"{options.name()} {operation} {text!r}: {detail}")

    for text in texts:
        expected_ids = processor.encode(text)
        CASES["encode"] += 1
        ids = enc.encode(text, disallowed_special=())
        if ids != expected_ids:
            differ("encode", text, f"{ids} != {expected_ids}")
            continue
        CASES["decode"] += 1
        if enc.decode(ids) != processor.decode(ids):
            differ("decode", text, f"{enc.decode(ids)!r} != {processor.decode(ids)!r}")
        must_answer = spells(options, text)
        _compare_offsets(enc, processor, text, must_answer, differ)
        _compare_truncations(enc, processor, text, must_answer, differ)
        _compare_chunks(enc, processor, text, must_answer, differ)
    return found


def _compare_offsets(enc, processor, text, must_answer, differ) -> None:
    CASES["offsets"] += 1
    try:
        result = enc.encode_with_offsets(text, disallowed_special=())
    except OffsetsUnavailableError as error:
        if must_answer:
            differ("offsets", text, f"refused: {error}")
        REFUSED["offsets"] += 1
        return
    utf8 = text.encode("utf-8")
    pieces = processor.encode(text, return_type="proto").pieces
    if result.ids != [piece.id for piece in pieces]:
        differ("offsets", text, f"ids {result.ids}")
        return
    for index, piece in enumerate(pieces):
        got = result.byte_spans()[index]
        if processor.is_byte(piece.id):
            # tokend: this piece's own byte; sentencepiece: the whole character at the character's last piece
            ok = got[1] - got[0] == 1 and (piece.surface == "" or piece.begin <= got[0] < got[1] == piece.end)
        else:
            ok = got == (piece.begin, piece.end)
        if not ok:
            differ("offsets", text, f"token {index} {piece.piece!r}: bytes {got} != {(piece.begin, piece.end)}")
            return
        # characters: from the first to the last character holding one of its bytes (none: an empty span)
        before = lambda position: len(utf8[:position].decode("utf-8", "ignore"))  # noqa: E731
        wanted = (before(got[0]), before(got[1] - 1) + 1 if got[1] > got[0] else before(got[0]))
        if result.spans()[index] != wanted:
            differ("offsets", text, f"token {index} {piece.piece!r}: characters {result.spans()[index]} != {wanted}")
            return


def _compare_truncations(enc, processor, text, must_answer, differ) -> None:
    total = len(processor.encode(text))
    cuts = oracle_cuts(processor, text) if must_answer else None
    for side in ("right", "left"):
        for budget in TRUNCATE_BUDGETS:
            CASES["truncate"] += 1
            try:
                kept = enc.truncate(text, budget, side, disallowed_special=())
            except OffsetsUnavailableError as error:
                if must_answer:
                    differ(f"truncate({budget}, {side})", text, f"refused: {error}")
                REFUSED["truncate"] += 1
                continue
            problem = _truncation_problem(processor, text, kept, budget, side, total, cuts)
            if problem:
                differ(f"truncate({budget}, {side})", text, problem)


def _truncation_problem(processor, text, kept, budget, side, total, cuts) -> str | None:
    if kept.text != text[kept.start : kept.end]:
        return f"text {kept.text!r} is not text[{kept.start}:{kept.end}]"
    if (kept.start if side == "right" else kept.end) != (0 if side == "right" else len(text)):
        return f"span {(kept.start, kept.end)} does not keep the {'start' if side == 'right' else 'end'}"
    if kept.ids != processor.encode(kept.text):
        return f"ids {kept.ids} != sentencepiece's {processor.encode(kept.text)} of {kept.text!r}"
    if len(kept.ids) > budget or kept.total_tokens != total:
        return f"{len(kept.ids)} tokens kept of {kept.total_tokens} (budget {budget}, whole {total})"
    if total <= budget:
        return None if (kept.start, kept.end) == (0, len(text)) else "the whole text fits but was cut"
    if cuts is None:
        return None
    at = kept.end if side == "right" else kept.start
    if at not in cuts:
        return f"cut at {at}, not a cut point of sentencepiece's pieces {cuts}"
    following = cuts[cuts.index(at) + (1 if side == "right" else -1)]
    longer = text[:following] if side == "right" else text[following:]
    if len(processor.encode(longer)) <= budget:
        return f"not maximal: {longer!r} fits too"
    return None


def _compare_chunks(enc, processor, text, must_answer, differ) -> None:
    for max_tokens, overlap in CHUNK_BUDGETS:
        CASES["chunk"] += 1
        try:
            chunks = enc.chunk(text, max_tokens, overlap, disallowed_special=())
        except OffsetsUnavailableError as error:
            if must_answer:
                differ(f"chunk({max_tokens}, {overlap})", text, f"refused: {error}")
            REFUSED["chunk"] += 1
            continue
        except InvalidBudgetError as error:
            start, end = (int(part) for part in str(error).split("characters ")[1].split(" ")[0].split(".."))
            if len(processor.encode(text[start:end])) <= max_tokens:
                differ(f"chunk({max_tokens}, {overlap})", text, f"refused a stretch that fits: {error}")
            continue
        problem = _chunks_problem(processor, text, chunks, max_tokens, overlap, must_answer)
        if problem:
            differ(f"chunk({max_tokens}, {overlap})", text, problem)


def _chunks_problem(processor, text, chunks, max_tokens, overlap, must_answer) -> str | None:
    if not text:
        return None if chunks == [] else f"chunks of the empty text: {chunks}"
    if chunks[0].start != 0 or chunks[-1].end != len(text):
        return f"chunks span {chunks[0].start}..{chunks[-1].end}"
    for chunk in chunks:
        if chunk.text != text[chunk.start : chunk.end] or chunk.start >= chunk.end:
            return f"chunk {chunk.text!r} is not text[{chunk.start}:{chunk.end}]"
        if chunk.ids != processor.encode(chunk.text) or len(chunk.ids) > max_tokens:
            return f"chunk {chunk.text!r}: ids {chunk.ids} (sentencepiece {processor.encode(chunk.text)}, budget {max_tokens})"
    for before, after in zip(chunks, chunks[1:]):
        if not before.start < after.start <= before.end < after.end or (overlap == 0 and after.start != before.end):
            return f"chunks {before.start}..{before.end} and {after.start}..{after.end} out of order"
    if overlap and must_answer:
        cuts = oracle_cuts(processor, text)
        if any(chunk.start not in cuts for chunk in chunks):
            return f"a chunk starts off sentencepiece's cut points {cuts}: {[c.start for c in chunks]}"
    return None
