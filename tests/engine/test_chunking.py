"""chunk: every chunk's own encoding fits, chunks cover the text in order, overlap and separators behave as
documented; on every family, on hostile text and on a model built to overshoot; linear in the text size."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import corpus_texts
from tests.engine._budget_support import (
    ATOMS,
    FAMILY_NAMES,
    OPENAI_NAMES,
    family,
    hostile_text,
    oracle,
    overshooting,
    overshooting_text,
    reference_cuts,
)
from tokend.engine import chunking
from tokend.errors import DisallowedSpecialTokenError, InvalidBudgetError

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFERENCES = ("paragraph", "sentence", "whitespace", "token")


def check_chunks(encode, text, chunks, max_tokens, overlap, token_bytes):
    """The guarantees of the chunking module, with `encode` as the encoder of record."""
    if not text:
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end] and chunk.start < chunk.end
        assert chunk.ids == encode(chunk.text) and chunk.token_count == len(chunk.ids) <= max_tokens
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start <= before.end < after.end
        if overlap == 0:
            assert after.start == before.end
    if overlap == 0:
        assert "".join(chunk.text for chunk in chunks) == text
    else:
        # overlaps start on token boundaries of the whole text's encoding
        cuts = set(reference_cuts(text, token_bytes))
        assert all(chunk.start in cuts for chunk in chunks)


def chunk_or_refusal(encoding, text, max_tokens, overlap, prefer, **policy):
    """The chunks, or None when the budget is unmeetable — which must then be true and named."""
    try:
        return encoding.chunk(text, max_tokens, overlap, prefer, **policy)
    except InvalidBudgetError as error:
        assert error.argument == "max_tokens"
        start, end = (int(part) for part in str(error).split("characters ")[1].split(" ")[0].split(".."))
        assert len(encoding.encode(text[start:end], **policy)) > max_tokens  # the stretch really needs more
        return None


@pytest.mark.parametrize("name", FAMILY_NAMES)
@SETTINGS
@given(
    text=hostile_text(),
    max_tokens=st.integers(1, 24),
    overlap_fraction=st.sampled_from([0, 0, 0.25, 0.5, 0.9]),
    prefer=st.sampled_from(PREFERENCES),
)
def test_chunk_invariants_on_every_family(name, text, max_tokens, overlap_fraction, prefer):
    encoding = family(name)
    overlap = int(max_tokens * overlap_fraction)
    chunks = chunk_or_refusal(encoding, text, max_tokens, overlap, prefer)
    if chunks is not None:
        token_bytes = encoding.decode_tokens_bytes(encoding.encode(text))
        check_chunks(encoding.encode, text, chunks, max_tokens, overlap, token_bytes)


@pytest.mark.parametrize("name", OPENAI_NAMES)
@SETTINGS
@given(text=hostile_text(), max_tokens=st.integers(4, 24), prefer=st.sampled_from(PREFERENCES))
def test_chunks_held_to_tiktoken(name, text, max_tokens, prefer):
    theirs = oracle(name)
    chunks = chunk_or_refusal(family(name), text, max_tokens, 0, prefer)
    if chunks is not None:
        check_chunks(theirs.encode, text, chunks, max_tokens, 0, theirs.decode_tokens_bytes(theirs.encode(text)))


@pytest.mark.parametrize("quick_retries", [chunking.MAX_QUICK_RETRIES, 0])
@SETTINGS
@given(
    text=overshooting_text(),
    max_tokens=st.integers(1, 12),
    overlap=st.integers(0, 11),
    prefer=st.sampled_from(PREFERENCES),
)
def test_chunks_when_cut_text_needs_more_tokens(quick_retries, text, max_tokens, overlap, prefer):
    """quick_retries=0 sends every overshooting chunk straight to the search (budget_search)."""
    encoding = overshooting()
    chunking.MAX_QUICK_RETRIES, saved = quick_retries, chunking.MAX_QUICK_RETRIES
    overlap = min(overlap, max_tokens - 1)
    try:
        chunks = chunk_or_refusal(encoding, text, max_tokens, overlap, prefer)
    finally:
        chunking.MAX_QUICK_RETRIES = saved
    if chunks is not None:
        check_chunks(encoding.encode, text, chunks, max_tokens, overlap, encoding.decode_tokens_bytes(encoding.encode(text)))


def test_an_overlap_longer_than_the_chunk_starts_on_a_token_boundary():
    """Found by hypothesis: the first chunk ends at a separator inside a token ("\n|\n") with fewer whole
    tokens before it than the overlap; the next start was that separator (cut -1 wrapped to the text's end)."""
    text = "hellohellohellohellohello0:0\x95\U00010000\U00010000\n\nhellohellohellohello"
    encoding, theirs = family("o200k_base"), oracle("o200k_base")
    chunks = chunk_or_refusal(encoding, text, 22, int(22 * 0.9), "whitespace")
    check_chunks(theirs.encode, text, chunks, 22, int(22 * 0.9), theirs.decode_tokens_bytes(theirs.encode(text)))


def test_chunks_fill_the_budget_on_prose():
    encoding = family("cl100k_base")
    text = "\n\n".join(corpus_texts(limit_bytes=60_000, kinds=("english",)))
    for prefer in PREFERENCES:
        chunks = encoding.chunk(text, 256, prefer=prefer)
        check_chunks(encoding.encode, text, chunks, 256, 0, [])
        # cuts keep at least half of the budget (SEPARATOR_WINDOW); token cuts come close to all of it
        assert all(chunk.token_count >= 128 for chunk in chunks[:-1]), prefer
        if prefer == "token":
            assert sum(chunk.token_count for chunk in chunks[:-1]) >= 250 * (len(chunks) - 1)


def test_separators_are_preferred_in_order():
    encoding = family("cl100k_base")
    paragraph = "Alpha beta gamma delta. Epsilon zeta eta theta.\n\n"
    text = paragraph * 6
    budget = len(encoding.encode(paragraph)) * 2 + 3
    chunks = encoding.chunk(text, budget, prefer="paragraph")
    assert all(chunk.text.endswith("\n\n") for chunk in chunks)
    chunks = encoding.chunk(text, budget, prefer="sentence")
    assert all(chunk.text.endswith((".", "\n\n", "\n")) for chunk in chunks[:-1])
    chunks = encoding.chunk(text, 7, prefer="whitespace")
    assert all(chunks[i + 1].text[0].isspace() for i in range(len(chunks) - 1))
    # no separator at all in the window: token boundaries
    letters = "abcdefghij" * 40
    chunks = encoding.chunk(letters, 10, prefer="paragraph")
    assert "".join(chunk.text for chunk in chunks) == letters and all(c.token_count <= 10 for c in chunks)


def test_overlap_shares_about_k_tokens():
    encoding = family("o200k_base")
    text = " ".join(f"word{i}" for i in range(3000))
    chunks = encoding.chunk(text, 100, overlap=20, prefer="token")
    check_chunks(encoding.encode, text, chunks, 100, 20, encoding.decode_tokens_bytes(encoding.encode(text)))
    for before, after in zip(chunks, chunks[1:]):
        shared = encoding.encode(text[after.start : before.end])
        assert 20 <= len(shared) <= 22


def test_special_tokens_are_never_split():
    encoding = family("cl100k_base")
    text = "first part.<|endoftext|>second. part<|endoftext|> third part here"
    for max_tokens in range(1, 12):
        chunks = encoding.chunk(text, max_tokens, prefer="sentence", allowed_special="all")
        assert "".join(chunk.text for chunk in chunks) == text
        for chunk in chunks:
            assert chunk.ids == encoding.encode(chunk.text, allowed_special="all")
            assert chunk.text.count("<|endoftext|>") == chunk.ids.count(encoding.eot_token)
    with pytest.raises(DisallowedSpecialTokenError):
        encoding.chunk(text, 8)


def test_a_budget_no_cut_can_meet_is_refused_precisely():
    """The error names a stretch between two neighbouring cut points that needs more tokens on its own, and
    the budget that would do; tiktoken confirms both."""
    encoding, theirs = family("cl100k_base"), oracle("cl100k_base")
    text = "ok 👩\u200d👩\u200d👧\u200d👦 ok"
    cuts = reference_cuts(text, theirs.decode_tokens_bytes(theirs.encode(text)))
    refused = 0
    for max_tokens in (1, 2):
        with pytest.raises(InvalidBudgetError, match=f"max_tokens={max_tokens} is too small") as caught:
            encoding.chunk(text, max_tokens)
        stretch = str(caught.value).split("characters ")[1].split(" ")[0]
        start, end = (int(part) for part in stretch.split(".."))
        needed = len(theirs.encode(text[start:end]))
        assert needed > max_tokens and f"use max_tokens >= {needed}" in str(caught.value)
        assert start in cuts and end in cuts and not [cut for cut in cuts if start < cut < end]
        refused += 1
    assert refused == 2
    assert "".join(chunk.text for chunk in encoding.chunk(text, 3)) == text


def test_empty_and_tiny_texts():
    encoding = family("trained")
    assert encoding.chunk("", 5) == []
    (only,) = encoding.chunk("a", 5, overlap=4)
    assert (only.text, only.start, only.end, only.ids) == ("a", 0, 1, encoding.encode("a"))


@pytest.mark.parametrize(
    "arguments, error, argument, fragment",
    [
        ((0,), InvalidBudgetError, "max_tokens", ">= 1, got 0"),
        ((-5,), InvalidBudgetError, "max_tokens", ">= 1, got -5"),
        ((8, 8), InvalidBudgetError, "overlap", r"below max_tokens \(8\), got 8"),
        ((8, 9), InvalidBudgetError, "overlap", "got 9"),
        ((8, -1), InvalidBudgetError, "overlap", ">= 0 and below"),
        ((8, 0, "line"), InvalidBudgetError, "prefer", "'paragraph', 'sentence', 'whitespace', 'token', got 'line'"),
        (("8",), TypeError, None, "max_tokens must be an int"),
        ((8, 1.5), TypeError, None, "overlap must be an int"),
    ],
)
def test_bad_arguments_are_precise_errors(arguments, error, argument, fragment):
    with pytest.raises(error, match=fragment) as caught:
        family("cl100k_base").chunk("some text to chunk", *arguments)
    if argument is not None:
        assert caught.value.argument == argument and isinstance(caught.value, ValueError)


def test_linear_in_the_text_size():
    """Complexity guard (not a benchmark): 4 MB of prose in 256-token chunks. Quadratic work (re-encoding
    from the start for each chunk) would take minutes; linear takes well under a second of engine time."""
    encoding = family("cl100k_base")
    text = "\n\n".join(corpus_texts(limit_bytes=4_000_000, kinds=("english",)))
    started = time.process_time()
    chunks = encoding.chunk(text, 256, overlap=32)
    elapsed = time.process_time() - started
    assert chunks[-1].end == len(text) and len(chunks) > 3000
    assert elapsed < 10, elapsed


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_one_megabyte_of_hostile_text(name):
    encoding = family(name)
    text = ("".join(ATOMS) * 2000)[:1_000_000]
    chunks = encoding.chunk(text, 200, overlap=20, prefer="sentence")
    check_chunks(encoding.encode, text, chunks, 200, 20, encoding.decode_tokens_bytes(encoding.encode(text)))


def test_max_chunks_bounds_the_work():
    encoding = family("cl100k_base")
    text = " word" * 1000  # 1000 tokens
    assert len(encoding.chunk(text, 100, max_chunks=10)) == 10
    with pytest.raises(InvalidBudgetError, match="more than max_chunks=9") as caught:
        encoding.chunk(text, 100, max_chunks=9)  # refused from the token count, before any chunk is made
    assert caught.value.argument == "max_chunks"
    with pytest.raises(InvalidBudgetError, match="more than max_chunks=10"):
        encoding.chunk(text, 100, overlap=50, max_chunks=10)  # overlap: found while chunking
    with pytest.raises(TypeError, match="max_chunks"):
        encoding.chunk(text, 100, max_chunks=0)


def test_iter_chunks_streams_the_same_chunks_and_checks_arguments_at_once():
    encoding = family("o200k_base")
    text = "\n\n".join(corpus_texts(limit_bytes=20_000, kinds=("english",)))
    stream = encoding.iter_chunks(text, 64, 8)
    first = next(stream)
    assert [first, *stream] == encoding.chunk(text, 64, 8)
    with pytest.raises(InvalidBudgetError, match="overlap"):
        encoding.iter_chunks(text, 64, 64)  # raised by the call, before any next()
    with pytest.raises(DisallowedSpecialTokenError):
        encoding.iter_chunks("a <|endoftext|>", 64)


def _every_occurrence_merged(tokens, text):
    """The oracle: every occurrence of every token (overlapping ones too) by `str.find`, merged where they
    overlap — what chunking protected before its one-pass search."""
    spans = []
    for token in tokens:
        position = text.find(token) if token else -1
        while position >= 0:
            spans.append((position, position + len(token)))
            position = text.find(token, position + 1)
    merged = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


_NESTED = frozenset({"ab", "abc", "aba", "bab", "b", "<|a|>", "a|>", "<|a", "|><|", ""})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "<|", "|>", "ab", "<|a|>", "x"]), max_size=40).map("".join))
def test_special_spans_are_every_occurrence_of_every_token(text):
    """Tokens inside, overlapping, nested in and prefixes of each other (and an empty one, never a span): the
    one-pass search gives the spans of every occurrence, as a find per token does."""
    from types import SimpleNamespace

    encoding = SimpleNamespace(special_tokens_set=_NESTED)
    assert chunking._special_spans(encoding, text, "all") == _every_occurrence_merged(_NESTED, text)
    allowed = {"ab", "a|>", "b"}
    assert chunking._special_spans(encoding, text, allowed) == _every_occurrence_merged(allowed, text)


def test_special_spans_of_harmonys_1091_tokens_in_one_pass():
    """o200k_harmony allowing all 1,091 special tokens: a `find` pass a token cost 3.7 s of CPU for 1 MB of "<|"
    (every one a prefix of them all) and 0.24 s a MB of prose (issue 13); one pass is ~0.01 s."""
    from tests.engine.test_openai_encodings import ours

    enc = ours("o200k_harmony")
    mixed = "a<|start|>b<|end|><|return|>x<|reserved_200010|><|<|start|" * 50
    assert chunking._special_spans(enc, mixed, "all") == _every_occurrence_merged(enc.special_tokens_set, mixed)
    text = "<|" * 500_000
    started = time.process_time()
    assert chunking._special_spans(enc, text, "all") == []
    assert time.process_time() - started < 1.0  # generous: 3.7 s before
