"""A Chunk call holds its chunks' spans and ids, not a copy of each chunk's text: gRPC's answer carries no
texts, and an overlap repeats them (tokens of 128 spaces in chunks of 2,300 overlapping by 2,299: 589 KB of
input, 677 MB of chunk texts; eight such calls at once took a worker from 0.28 to 4.6 GB, past its 256 MiB
work budget). ``TextChunk.text`` is sliced from the input when asked for."""

from __future__ import annotations

import tracemalloc

import pytest

from tokend.registry import Registry
from tokend.service import Limits, ServedModels, TokenizerService

SPACES = " " * 128  # one cl100k_base token (58040)


@pytest.fixture(scope="module")
def service():
    return TokenizerService(ServedModels(Registry.open()), Limits())


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
