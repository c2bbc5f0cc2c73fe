"""Chunk's answer written a group of chunks at a time (server/chunk_answer.py) is protobuf's own bytes."""

from __future__ import annotations

import pytest
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.registry import Registry
from tokend.server import chunk_answer
from tokend.server.chunk_answer import ChunkAnswer, serialize_chunk_response
from tokend.server.messages import model_version
from tokend.service import Limits, ServedModels, TokenizerService


@pytest.fixture(scope="module")
def service():
    return TokenizerService(ServedModels(Registry.open()), Limits())


def message_of(chunked) -> pb.ChunkResponse:
    """The answer as a message, built the way the servicer built it before ChunkAnswer."""
    response = pb.ChunkResponse(model=model_version(chunked.model))
    for chunks in chunked.results:
        group = response.results.add()
        for chunk in chunks:
            group.chunks.add(start=chunk.start, end=chunk.end, byte_start=chunk.byte_start, byte_end=chunk.byte_end).ids.extend(chunk.ids)
    return response


@pytest.mark.parametrize("at_once", [chunk_answer.CHUNKS_AT_ONCE, 7, 1])
def test_the_bytes_are_protobufs_for_every_group_size(service, monkeypatch, at_once):
    monkeypatch.setattr(chunk_answer, "CHUNKS_AT_ONCE", at_once)
    inputs = ["word " * 2_500, "", "é中 " * 300 + "\n\nA paragraph. Two sentences!", "x"]  # 2,500 one-token chunks first
    expected = message_of(service.chunk("cl100k_base", inputs, 1)).SerializeToString()
    chunked = service.chunk("cl100k_base", inputs, 1)
    written = serialize_chunk_response(ChunkAnswer(chunked.model, chunked.results))
    assert written == expected
    assert len(pb.ChunkResponse.FromString(written).results[0].chunks) > 2_000  # groups of every size were written
    assert all(chunks == [] for chunks in chunked.results)  # freed after writing, a slice at a time


def test_a_message_is_serialized_as_it_is():
    response = pb.ChunkResponse(model=pb.ModelVersion(name="m", version=3))
    assert serialize_chunk_response(response) == response.SerializeToString()


def test_an_answer_without_inputs_is_its_model_alone(service):
    chunked = service.chunk("cl100k_base", [], 4)
    assert serialize_chunk_response(ChunkAnswer(chunked.model, chunked.results)) == message_of(chunked).SerializeToString()
