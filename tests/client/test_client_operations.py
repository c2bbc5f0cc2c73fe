"""Request building and response checking shared by both clients (pure: no server needed)."""

from __future__ import annotations

import pytest

import tokend_client
from tokend_client._operations import encode_operation, text_inputs, token_id_inputs, utf8_text
from tokend_api.v1 import tokenizer_pb2 as pb
from tokend_api.policy_message import ORDINARY


def test_sizes_are_counted_as_the_server_counts_them():
    # UTF-8 bytes of text (service/src/tokend/server/servicer.py); 4 bytes per token id.
    inputs, sizes = text_inputs(["abc", "é", "😉", ""])
    assert sizes == [3, 2, 4, 0]
    assert [item.text for item in inputs] == ["abc", "é", "😉", ""]
    _, id_sizes = token_id_inputs([[1, 2, 3], []], batch_call=True)
    assert id_sizes == [12, 0]


def test_lone_surrogates_are_repaired_like_tiktoken():
    # tiktoken: text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert utf8_text("a\ud800b") == ("a\ufffdb", 5)
    assert utf8_text("\ud83d\ude00") == ("😀", 4)  # a surrogate pair becomes its character


def test_impossible_token_ids_are_refused_before_sending():
    with pytest.raises(tokend_client.UnknownTokenIdError) as caught:
        token_id_inputs([[1], [2, -1]], batch_call=True)
    assert (caught.value.token_id, caught.value.item) == (-1, 1)
    with pytest.raises(tokend_client.UnknownTokenIdError):
        token_id_inputs([[2**32]], batch_call=False)


def test_responses_that_break_the_contract_are_protocol_errors():
    operation = encode_operation("cl100k_base@1", ORDINARY, ("cl100k_base", 1))
    good = pb.EncodeResponse(model=pb.ModelVersion(name="cl100k_base", version=1), results=[pb.TokenIds(ids=[1])])
    assert operation.results(good, expected_items=1) == [[1]]
    with pytest.raises(tokend_client.ProtocolError, match="1 results for 2 inputs"):
        operation.results(good, expected_items=2)
    other_version = pb.EncodeResponse(model=pb.ModelVersion(name="cl100k_base", version=2), results=[pb.TokenIds()])
    with pytest.raises(tokend_client.ProtocolError, match="answered by cl100k_base@2"):
        operation.results(other_version, expected_items=1)


def test_requests_name_the_pinned_version_and_carry_the_policy():
    operation = encode_operation("cl100k_base@1", ORDINARY, ("cl100k_base", 1))
    request = operation.request(text_inputs(["x"])[0])
    assert request.model == "cl100k_base@1"
    assert request.special_tokens.disallowed.mode == pb.SpecialTokenSet.MODE_NONE
    assert [item.text for item in request.inputs] == ["x"]
