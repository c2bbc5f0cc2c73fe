"""A model whose working memory follows its *normalized* text (a SentencePiece Unigram model's Viterbi; a byte-level
model's merge of a piece NFC made longer) is estimated on that text, and a request whose normalized text passes twice
``--max-request-bytes`` is refused (RESOURCE_EXHAUSTED, ``max_request_bytes``): one CountTokens of 8 MiB of U+FDFA
(13 times longer under nmt_nfkc) took a worker from 72 to 1,804 MiB (docs/decisions.md, hostile23), and 7.5 MiB of
U+1D160 (3 times under NFC) on Qwen 3's model ~+400 MiB against an estimate of 150. Texts within it are answered
with the reference's ids (sentencepiece, tokenizers); SentencePiece BPE models (whose memory follows their pieces)
keep the input-bytes rule. A real one-worker server.
"""

from __future__ import annotations

import json

import grpc
import pytest
from tokend_api.v1 import tokenizer_pb2 as pb

from support.fuzz_references import model_and_reference
from support.server import TokendServer
from support.tokenizer_json import qwen3_tokenizer_json
from tests.engine.sentencepiece.models import model_bytes, oracle
from tokend.registry import Registry, chat_format_from_template
from tokend.registry.importing import import_files

from .conftest import rpc_error
from .status_details import details_of

LIMIT = 1 << 20  # --max-request-bytes
LIGATURE = "\ufdfa"  # 3 bytes; nmt_nfkc: 18 characters, 39 bytes with its spaces as "▁"
NOTE = "\U0001d160"  # 4 bytes; NFC: three characters of 4 bytes
TEMPLATE = "{% for message in messages %}{{ message.role }}: {{ message.content }}\n{% endfor %}"
ENGLISH = "The quick brown fox jumps over the lazy dog, and then some more words follow. "


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    directory = tmp_path_factory.mktemp("growth")
    root = directory / "models"
    registry = Registry.open(root, create=True)
    (directory / "tokenizer.json").write_text(json.dumps(qwen3_tokenizer_json()), encoding="utf-8")
    import_files(registry, [directory / "tokenizer.json"], name="qwen3", provenance={"kind": "imported", "command": "test"})
    for name in ("unigram", "nmt_nfkc"):  # spm_train's defaults (nmt_nfkc): Unigram, and BPE
        registry.publish(name, payload=model_bytes(name), payload_format="sentencepiece_model",
                         provenance={"kind": "imported"}, chat_format=chat_format_from_template(TEMPLATE))
    server = TokendServer("--max-request-bytes", str(LIMIT), registry=root, workers=1, metrics=False).start()
    try:
        yield server.stub()
    finally:
        server.stop()


def _count(model: str, text: str) -> pb.CountTokensRequest:
    return pb.CountTokensRequest(model=model, inputs=[pb.Input(text=text)])


@pytest.mark.parametrize("rpc", ["CountTokens", "Encode"])
def test_a_unigram_text_normalized_past_twice_the_request_limit_is_refused(stub, rpc):
    text = LIGATURE * (LIMIT // 3 - 100)  # within the request limit; ~13 MB once normalized
    request = _count("unigram", text) if rpc == "CountTokens" else pb.EncodeRequest(model="unigram", inputs=[pb.Input(text=text)])
    error = rpc_error(getattr(stub, rpc), request, timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_request_bytes"
    assert "normalizer" in error.details()


def test_unigram_texts_within_it_are_answered_with_sentencepieces_ids(stub):
    reference = oracle("unigram")
    english = (ENGLISH * (LIMIT // len(ENGLISH)))[: LIMIT - 100]  # the whole request limit: ~1.3 times once normalized
    grown = LIGATURE * 50_000  # 150 KB: ~1.95 MB once normalized, within 2 MiB
    for text in (english, grown):
        answer = stub.CountTokens(_count("unigram", text), timeout=60)
        assert answer.counts == [len(reference.encode(text))]
    ids = stub.Encode(pb.EncodeRequest(model="unigram", inputs=[pb.Input(text=grown)]), timeout=60).results[0].ids
    assert list(ids) == reference.encode(grown)


def test_a_bpe_model_keeps_the_input_bytes_rule(stub):
    text = LIGATURE * (LIMIT // 3 - 100)
    assert stub.CountTokens(_count("nmt_nfkc", text), timeout=60).counts == [len(oracle("nmt_nfkc").encode(text))]


def test_a_byte_level_nfc_text_normalized_past_twice_the_request_limit_is_refused(stub):
    error = rpc_error(stub.CountTokens, _count("qwen3", NOTE * (LIMIT // 4 - 100)), timeout=30)  # ~3 MiB once normalized
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_request_bytes"
    _, reference = model_and_reference("qwen3")
    for text in (NOTE * 150_000, (ENGLISH * (LIMIT // len(ENGLISH)))[: LIMIT - 100]):  # 1.8 MB once normalized; 1 MiB
        assert stub.CountTokens(_count("qwen3", text), timeout=60).counts == [len(reference(text))]


def test_a_chat_whose_content_normalizes_past_twice_the_request_limit_is_refused(stub):
    def chat(text: str) -> pb.CountChatTokensRequest:
        message = pb.ChatMessage(role="user", text=text)
        return pb.CountChatTokensRequest(model="unigram", conversations=[pb.ChatConversation(messages=[message])])

    error = rpc_error(stub.CountChatTokens, chat(LIGATURE * (LIMIT // 3 - 100)), timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_request_bytes"
    text = LIGATURE * 50_000
    assert stub.CountChatTokens(chat(text), timeout=60).results[0].total == len(oracle("unigram").encode(f"user: {text}\n"))


def test_raw_bytes_no_normalizer_sees_are_measured_as_they_are(stub):
    """review23: bytes that are not UTF-8 (``data``) reach a byte-level model's merge as they are (``encode_bytes``:
    the valid prefix normalized, the rest one raw piece), so NFC makes them no longer; measured as three bytes each
    (a U+FFFD), 1 MiB of 0xFF was refused "3,145,428 bytes of text once the model's normalizer has rewritten it".
    The valid UTF-8 before them is still measured normalized: a prefix of U+1D160 that NFC takes past the limit is
    refused. (SentencePiece's normalizer does turn each such byte into U+FFFD: refused there, the row of docs/api.md.)"""
    data = b"\xff" * (LIMIT - 100)
    count = stub.CountTokens(pb.CountTokensRequest(model="qwen3", inputs=[pb.Input(data=data)]), timeout=60).counts[0]
    assert 1 <= count <= len(data)  # each token spells one byte or more
    grown = (NOTE * (LIMIT // 4 - 100)).encode() + b"\xff"
    error = rpc_error(stub.CountTokens, pb.CountTokensRequest(model="qwen3", inputs=[pb.Input(data=grown)]), timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_request_bytes"
