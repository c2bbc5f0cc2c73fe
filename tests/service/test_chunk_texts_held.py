"""A Chunk call holds its chunks' spans and ids, not a copy of each chunk's text: gRPC's answer carries no
texts, and an overlap repeats them (tokens of 128 spaces in chunks of 2,300 overlapping by 2,299: 589 KB of
input, 677 MB of chunk texts; eight such calls at once took a worker from 0.28 to 4.6 GB, past its 256 MiB
work budget). ``TextChunk.text`` is sliced from the input when asked for. And the chunks' texts together, which
the chunking encodes one by one, are bounded by the answer limit (the same call took 2.9 s of CPU)."""

from __future__ import annotations

import tracemalloc

import pytest

from tokend.registry import Registry
from tokend.service import Limits, RequestLimitExceeded, ServedModels, TokenizerService

SPACES = " " * 128  # one cl100k_base token (58040)


@pytest.fixture(scope="module")
def service():
    return TokenizerService(ServedModels(Registry.open()), Limits(max_response_bytes=64 << 20))  # 32 MB of texts below


def test_overlapping_chunks_do_not_hold_a_copy_of_their_texts(service):
    text = SPACES * 1000
    service.chunk("cl100k_base", [text], 10, overlap=9, prefer="token")  # the model loaded before measuring
    tracemalloc.start()
    try:
        chunked = service.chunk("cl100k_base", [text], 500, overlap=499, prefer="token")
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    chunks = chunked.results[0]
    texts = sum(chunk.end - chunk.start for chunk in chunks)
    assert len(chunks) == 501 and texts == 501 * 500 * 128  # 32 MB of chunk text
    # The ids (250,500 of them) and spans: ~10 MB of Python objects; a copy of each text would be 32 MB more.
    assert held < texts // 2, (held, texts)
    for chunk in (chunks[0], chunks[250], chunks[-1]):
        assert chunk.text == text[chunk.start:chunk.end] and chunk.ids == [58040] * 500


@pytest.fixture(scope="module")
def bounded():
    return TokenizerService(ServedModels(Registry.open()), Limits(max_response_bytes=1 << 20))


def _encoded_bytes(monkeypatch) -> list[int]:
    """The characters of every chunk text the engine encodes, recorded as it encodes them: each chunk's own
    encoding (`own_encoder`'s, which the planned chunks call directly) and the searches' (`_Chunker.encode`,
    which calls the same encoder)."""
    from tokend.engine import chunking

    seen: list[int] = []
    own_encoder = chunking.own_encoder

    def counting_encoder(encoding, allowed_special):
        encode = own_encoder(encoding, allowed_special)
        return lambda part: seen.append(len(part)) or encode(part)

    monkeypatch.setattr(chunking, "own_encoder", counting_encoder)
    return seen


@pytest.mark.parametrize("stream", [False, True])
def test_the_chunks_texts_together_stop_at_the_answer_limit_as_they_are_made(bounded, monkeypatch, stream):
    """600 tokens of 128 spaces (77 KB) in chunks of 300 overlapping by 299 are 301 chunks of 38 KB: 11.5 MB of
    chunk text, each encoded, for 270 KB of ids (within the 1 MiB answer). Refused once past 1 MiB of texts
    (a stream: 4 MiB), naming the limit and the overlap, after ~28 (~110) chunks' texts were encoded, not 301."""
    text = SPACES * 600
    bounded.chunk("cl100k_base", [SPACES * 4], 2)  # the model loaded
    seen = _encoded_bytes(monkeypatch)
    with pytest.raises(RequestLimitExceeded) as refused:
        if stream:
            list(bounded.chunk_stream("cl100k_base", text, 300, overlap=299, prefer="token"))
        else:
            bounded.chunk("cl100k_base", [text], 300, overlap=299, prefer="token")
    error = refused.value
    # a stream's bound is what it may answer in all (STREAM_ANSWER_MESSAGES answer limits)
    limit = bounded.limits.max_stream_answer_bytes if stream else 1 << 20
    assert (error.limit_name, error.limit) == ("max_stream_answer_bytes" if stream else "max_message_bytes", limit)
    assert limit < error.actual <= limit + 300 * 128 and "bytes of chunk text" in str(error)
    assert "lower the overlap" in str(error)
    assert sum(seen) > limit, sum(seen)  # the count sees the chunks' encodes (it saw none: a vacuous bound)
    assert sum(seen) < limit + 2 * (1 << 20), sum(seen)  # was 11.5 MB: every chunk


def test_the_chunks_texts_of_all_inputs_share_the_bound_and_an_input_without_overlap_is_answered(bounded):
    text = SPACES * 4000  # 512,000 bytes: each input alone within 1 MiB of texts without an overlap
    chunked = bounded.chunk("cl100k_base", [text, text], 1000, prefer="token")
    assert [len(chunks) for chunks in chunked.results] == [4, 4]
    assert all(chunk.ids == [58040] * 1000 and chunk.text == SPACES * 1000 for chunks in chunked.results for chunk in chunks)
    with pytest.raises(RequestLimitExceeded) as refused:  # three of them: 1.5 MB of texts in all
        bounded.chunk("cl100k_base", [text, text, text], 1000, prefer="token")
    assert refused.value.limit_name == "max_message_bytes" and "send less text per request" in str(refused.value)
