"""Encode's answer bytes are written natively (tokend.server.encode_answer, native/encode_answer.c) instead
of by protobuf: they must be exactly protobuf's bytes for the same message, for every shape of answer,
and the GIL must be free while a big one is written. The end-to-end check (a real server's big answer
equals tiktoken's ids) is here too; every other Encode test goes through the same serializer.
"""

from __future__ import annotations

from array import array

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.server._encode_answer import encode_response
from tokend.server.encode_answer import EncodeAnswer, serialize_encode_response
from tokend.service.results import ModelVersion
from tokend_api.v1 import tokenizer_pb2 as pb

from support.gil_ticks import longest_gap_with_a_core, ticks_during

UINT32 = st.integers(min_value=0, max_value=2**32 - 1)
# Ids near the varint length boundaries, where a size slip would show.
IDS = st.one_of(UINT32, st.sampled_from([0, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**32 - 1]))
FORMS = {
    "list": list,
    "memoryview": lambda ids: memoryview(array("I", ids)),
    "array": lambda ids: array("I", ids),
    "memoryview of bytes": lambda ids: memoryview(array("I", ids).tobytes()).cast("I"),
}


def _protobuf(name: str, version: int, total: int, results: list[list[int]]) -> bytes:
    return pb.EncodeResponse(
        model=pb.ModelVersion(name=name, version=version), results=[pb.TokenIds(ids=ids) for ids in results],
        total_tokens=total,
    ).SerializeToString()  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(max_size=300),
    version=UINT32,
    total=st.integers(min_value=0, max_value=2**64 - 1),
    results=st.lists(st.lists(IDS, max_size=40), max_size=6),
    form=st.sampled_from(sorted(FORMS)),
)
def test_bytes_are_protobufs(name, version, total, results, form) -> None:
    expected = _protobuf(name, version, total, results)
    got = serialize_encode_response(EncodeAnswer(ModelVersion(name, version), [FORMS[form](ids) for ids in results], total))
    assert got == expected
    assert pb.EncodeResponse.FromString(got).results[-1:] == pb.EncodeResponse.FromString(expected).results[-1:]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_big_answer_in_every_form(form) -> None:
    """Past the size where the GIL is released; lists yield it while they are converted."""
    import random

    rng = random.Random(3)
    results = [[rng.randrange(200_000) for _ in range(70_000)], [], [rng.randrange(2**32) for _ in range(20_000)]]
    total = sum(map(len, results))
    got = encode_response(b"cl100k_base", 7, total, [FORMS[form](ids) for ids in results])
    assert got == _protobuf("cl100k_base", 7, total, results)


def test_a_protobuf_message_is_serialized_by_protobuf() -> None:
    message = pb.EncodeResponse(model=pb.ModelVersion(name="m", version=1), results=[pb.TokenIds(ids=[1, 2])],
                                offsets=[pb.TokenOffsets(starts=[0, 1])])  # fmt: skip
    assert serialize_encode_response(message) == message.SerializeToString()


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        (memoryview(b"abcd"), TypeError),  # format "B"
        (array("Q", [1]), TypeError),  # 8-byte items
        (array("i", [1]), TypeError),  # signed
        ([1, -1], OverflowError),
        ([1, 2**32], OverflowError),
        ([1, "2"], TypeError),
        ("12", TypeError),
    ],
)
def test_what_is_not_uint32_ids_is_refused(ids, error) -> None:
    with pytest.raises(error):
        encode_response(b"m", 1, 2, [ids])


def test_the_gil_is_free_while_a_big_answer_is_written() -> None:
    ids = memoryview(array("I", range(2**28 - 8_000_000, 2**28)))  # 8 M ids of 4-5 bytes each
    # With the GIL held throughout, the ticker could not run at all between the start and the end.
    ticks, seconds = ticks_during(lambda: encode_response(b"m", 1, len(ids), [ids]))
    assert ticks >= 2, f"{seconds:.3f} s without a tick"


@pytest.mark.parametrize("switch_interval", [0.005, 0.001], ids=["CPython's default", "the workers'"])
@pytest.mark.parametrize("lists", [1, 64], ids=["one list", "many short lists"])
def test_lists_being_converted_hand_the_gil_over(switch_interval, lists) -> None:
    """A list is converted holding the GIL. Releasing and re-taking it every 65,536 ids (~0.2 ms) was no hand-off:
    a waiting thread asks only when its timed wait of one switch interval runs out, and every release woke it
    before then, so it got no turn for the whole conversion; and lists under 65,536 ids never let go at all."""
    import sys

    ids = list(range(2**28, 2**28 + 4_000_000))  # 5-byte varints; converting them is most of the call
    step = len(ids) // lists
    results = [ids[i : i + step] for i in range(0, len(ids), step)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        gap, seconds = longest_gap_with_a_core(lambda: encode_response(b"m", 1, len(ids), results),
                                               lambda gap, seconds: gap < seconds / 2)
    finally:
        sys.setswitchinterval(interval)
    assert gap < seconds / 2, f"{gap:.3f} s of the call's {seconds:.3f} s without a tick of another thread"


def test_a_big_encode_through_the_server_is_tiktokens(stub) -> None:
    """Tens of thousands of ids (the buffer path, the GIL released) through a real server and client."""
    text = " ".join(f"word{i} {i * 7919 % 10007}" for i in range(6_000))  # ~24,000 ids
    single_piece = "abcdefghij" * 2_000  # one piece of 20 KB: the core's long merge (tiktoken's is quadratic)
    response = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text), pb.Input(text=""),
                                                                          pb.Input(text=single_piece)]))  # fmt: skip
    oracle = tiktoken.get_encoding("cl100k_base")
    assert [list(result.ids) for result in response.results] == [oracle.encode(text), [], oracle.encode(single_piece)]
    assert response.total_tokens == sum(len(result.ids) for result in response.results)
    assert (response.model.name, response.model.version) == ("cl100k_base", 1)


def test_every_field_of_the_answer_is_written() -> None:
    """native/encode_answer.c writes these fields (offsets go through protobuf): a new field of
    EncodeResponse, TokenIds or ModelVersion must be added there too, and here."""
    fields = {message.DESCRIPTOR.full_name: sorted((f.number, f.name) for f in message.DESCRIPTOR.fields)
              for message in (pb.EncodeResponse, pb.TokenIds, pb.ModelVersion)}  # fmt: skip
    assert fields == {
        "tokend.v1.EncodeResponse": [(1, "model"), (2, "results"), (3, "total_tokens"), (4, "offsets")],
        "tokend.v1.TokenIds": [(1, "ids")],
        "tokend.v1.ModelVersion": [(1, "name"), (2, "version")],
    }
