"""The service's sums over long id lists go a slice at a time (so a worker's other calls get the GIL
between slices) and stay exact: the varint size of an answer (``id_bytes``, protobuf's own serialization as
the oracle; a native uint32 buffer is measured in C) and the decoded size of a Decode (``decoded_bytes``, the engine's ``decode_bytes`` as the
oracle), across slice boundaries."""

from __future__ import annotations

import random
from array import array

import pytest

from tokend import get_encoding
from tokend.service.limits import SUM_SLICE_IDS, AnswerBudget, Limits, id_bytes
from tokend.service.token_sizes import decoded_bytes
from tokend_api.v1 import tokenizer_pb2 as pb

LENGTHS = [0, 1, SUM_SLICE_IDS - 1, SUM_SLICE_IDS, SUM_SLICE_IDS + 1, 3 * SUM_SLICE_IDS + 7]


def _varint_bytes_by_protobuf(ids: list[int]) -> int:
    """The packed payload's size in protobuf's serialization: field tag (1 byte) + length varint + payload."""
    serialized = len(pb.TokenIds(ids=ids).SerializeToString())
    if not ids:
        return 0
    for length_bytes in range(1, 6):
        payload = serialized - 1 - length_bytes
        if len(pb.TokenIds(ids=[payload]).SerializeToString()) - 2 == length_bytes:  # the varint of `payload`
            return payload
    raise AssertionError("no consistent payload size")


@pytest.mark.parametrize("length", LENGTHS)
def test_id_bytes_is_exact_across_slices(length):
    rng = random.Random(length)
    ids = [rng.choice((1, 127, 128, 16383, 16384, 100_276, 2_097_152, 300_000_000)) for _ in range(length)]
    assert id_bytes(ids) == _varint_bytes_by_protobuf(ids)
    capped = [min(token, 100_276) for token in ids]
    assert id_bytes(capped, largest=100_276) == _varint_bytes_by_protobuf(capped)


@pytest.mark.parametrize("length", LENGTHS)
def test_id_bytes_of_a_native_buffer_is_exact(length):
    # The ids of a text encoded alone come as a uint32 memoryview: measured natively, the GIL released.
    rng = random.Random(length)
    ids = [rng.choice((0, 1, 127, 128, 16383, 16384, 100_276, 2_097_152, 300_000_000, 2**32 - 1)) for _ in range(length)]
    assert id_bytes(memoryview(array("I", ids))) == _varint_bytes_by_protobuf(ids)
    text = "\x01" * length + " hello world"
    buffer = get_encoding("cl100k_base").encode_to_buffer(text)
    assert isinstance(buffer, memoryview) and id_bytes(buffer) == _varint_bytes_by_protobuf(list(buffer))


def test_id_bytes_stops_over_a_bound_with_a_lower_bound():
    ids = [200] * (4 * SUM_SLICE_IDS)  # 2 bytes each
    found = id_bytes(ids, stop_above=SUM_SLICE_IDS, largest=100_276)
    assert SUM_SLICE_IDS < found <= 2 * len(ids)


def test_an_answer_over_the_limit_is_refused_with_its_size_at_least():
    limits = Limits(max_response_bytes=3 * SUM_SLICE_IDS)
    budget = AnswerBudget(limits, items=1, max_token_value=100_276)
    with pytest.raises(Exception) as raised:
        budget.add([200] * (2 * SUM_SLICE_IDS))  # 4 × SUM_SLICE_IDS bytes: over
    assert "at least" in str(raised.value)


@pytest.mark.parametrize("length", LENGTHS)
def test_decoded_bytes_is_exact_across_slices(length):
    encoding = get_encoding("cl100k_base")
    rng = random.Random(length)
    ids = [rng.randrange(100_000) for _ in range(length)]
    inputs = [ids, ids[: length // 3]]
    assert decoded_bytes(encoding, inputs, enough=0) == sum(len(encoding.decode_bytes(item)) for item in inputs)


@pytest.mark.parametrize("length", LENGTHS)
def test_decoded_bytes_of_a_native_buffer_is_exact(length):
    # A large Decode request's ids come as uint32 memoryviews (tokend.server.decode_request): summed natively,
    # the GIL released; ids past the model's last token count 0, as in the sliced sum (decoding them raises).
    encoding = get_encoding("cl100k_base")
    rng = random.Random(length)
    ids = [rng.randrange(100_000) for _ in range(length)]
    buffer = memoryview(array("I", ids + [2**32 - 1, 100_300])).cast("B").toreadonly().cast("I")
    expected = sum(len(encoding.decode_bytes(ids[i : i + 1000])) for i in range(0, length, 1000))
    assert decoded_bytes(encoding, [buffer, buffer[: length // 3], buffer[:0]], enough=0) == (
        expected + len(encoding.decode_bytes(ids[: length // 3]))
    )
    assert decoded_bytes(encoding, [buffer], enough=0) == decoded_bytes(encoding, [ids + [2**32 - 1, 100_300]], enough=0)


@pytest.mark.parametrize("length", [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, (2 << 20) + 3])
def test_native_varint_sizes_are_exact_across_the_32_bit_blocks(length):
    # varint.h sums the extra bytes of each block of 2^20 ids in 32 bits, then into the total
    from tokend.engine._native import varint_bytes

    values = (0, 127, 128, 16383, 16384, 2_097_151, 2_097_152, 268_435_455, 268_435_456, 2**32 - 1)
    ids = array("I", (values[(i * 7 + i // 3) % len(values)] for i in range(length)))
    per_value = {value: (max(value.bit_length(), 1) + 6) // 7 for value in values}
    assert varint_bytes(memoryview(ids)) == sum(per_value[value] for value in ids)
    assert varint_bytes(memoryview(array("I", [2**32 - 1]) * length)) == 5 * length  # every block at its most
