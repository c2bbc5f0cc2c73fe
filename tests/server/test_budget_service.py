"""The token-budget operations of the service layer, in process: requests reach the engine's operations,
limits and deadlines bound them, and every error becomes one Failure that each front-end maps (gRPC
status, HTTP status, CLI line). The budget semantics themselves are the engine's, proved against tiktoken
in tests/engine/test_budget*.py; here tiktoken checks what comes back through the service."""

from __future__ import annotations

import pytest
import tiktoken
from google.rpc import code_pb2, error_details_pb2

from tokend.errors import InvalidBudgetError, OffsetsUnavailableError
from tokend.registry import Registry
from tokend.server.status_mapping import to_rpc_status
from tokend.service import (
    BatchItemError,
    CallCancelled,
    DeadlineExpired,
    ErrorKind,
    InvalidRequest,
    Limits,
    RequestLimitExceeded,
    ServedModels,
    SpecialTokenPolicy,
    TokenizerService,
    describe,
)
from tokend.playground.http_error import error_from_exception

TEXT = "The quick brown fox jumps over the lazy dog. 🤖 Ünïcödé!\n\nA second paragraph, with two sentences. Yes."


@pytest.fixture(scope="module")
def registry():
    return Registry.open()


@pytest.fixture(scope="module")
def service(registry):
    return TokenizerService(ServedModels(registry), Limits())


@pytest.fixture(scope="module")
def oracle():
    return tiktoken.get_encoding("cl100k_base")


class CountdownCall:
    """A call whose deadline passes after `checks` checks (deterministic: no clocks)."""

    def __init__(self, checks: int, active: bool = True) -> None:
        self.checks = checks
        self.active = active

    def time_remaining(self):
        self.checks -= 1
        return 1.0 if self.checks >= 0 else 0.0

    def is_active(self):
        return self.active


def test_offsets_are_tiktokens_and_token_bytes_spell_the_text(service, oracle):
    texts = [TEXT, "", "naïve 語 \U0001f9ea"]
    result = service.encode_with_offsets("cl100k_base", texts, token_bytes=True)
    for text, ids, spans in zip(texts, result.ids, result.spans):
        assert ids == oracle.encode(text)
        assert list(spans.starts) == oracle.decode_with_offsets(ids)[1]
        assert spans.token_bytes == oracle.decode_tokens_bytes(ids)
        utf8 = text.encode("utf-8")
        assert [utf8[start:end] for start, end in zip(spans.byte_starts, spans.byte_ends)] == spans.token_bytes
    assert result.total_tokens == sum(len(oracle.encode(text)) for text in texts)
    only_bytes = service.encode_with_offsets("cl100k_base", ["hi"], offsets=False, token_bytes=True).spans[0]
    assert only_bytes.starts is None and only_bytes.token_bytes == [b"hi"]


def test_truncate_and_chunk_reach_the_engine_with_byte_spans(service, registry, oracle):
    encoding = registry.get_encoding("cl100k_base")
    for side in ("right", "left"):
        kept = service.truncate("cl100k_base", [TEXT], 9, side).results[0]
        expected = encoding.truncate(TEXT, 9, side)
        assert (kept.text, kept.ids, kept.start, kept.end, kept.total_tokens) == (
            expected.text, expected.ids, expected.start, expected.end, expected.total_tokens)
        assert kept.ids == oracle.encode(kept.text) and len(kept.ids) <= 9
        assert TEXT.encode()[kept.byte_start : kept.byte_end] == kept.text.encode()
    chunks = service.chunk("cl100k_base", [TEXT, "x"], 7, overlap=2, prefer="sentence").results
    expected = [encoding.chunk(text, 7, overlap=2, prefer="sentence") for text in (TEXT, "x")]
    assert [[(c.text, c.start, c.end, c.ids) for c in item] for item in chunks] == [
        [(c.text, c.start, c.end, c.ids) for c in item] for item in expected]
    for piece in chunks[0]:
        assert TEXT.encode()[piece.byte_start : piece.byte_end] == piece.text.encode()
        assert len(oracle.encode(piece.text)) <= 7
    streamed = service.chunk_stream("cl100k_base", TEXT, 7, overlap=2, prefer="sentence")
    assert streamed.model.name == "cl100k_base" and list(streamed) == chunks[0]


def test_argument_errors_name_the_argument_before_any_item(service):
    cases = [
        (lambda: service.truncate("cl100k_base", ["x"], -1), "max_tokens"),
        (lambda: service.truncate("cl100k_base", ["x"], 1, "middle"), "side"),
        (lambda: service.chunk("cl100k_base", ["x"], 0), "max_tokens"),
        (lambda: service.chunk("cl100k_base", ["x"], 4, overlap=4), "overlap"),
        (lambda: service.chunk("cl100k_base", ["x"], 4, prefer="chapter"), "prefer"),
        (lambda: service.chunk("cl100k_base", ["x"], 4, max_chunks=0), "max_chunks"),
    ]
    for call, argument in cases:
        with pytest.raises(InvalidBudgetError) as caught:
            call()
        failure = describe(caught.value)
        assert (failure.kind, failure.field, failure.metadata["argument"]) == (ErrorKind.INVALID_INPUT, argument, argument)
        assert "item" not in failure.metadata
    with pytest.raises(InvalidRequest, match="max_tokens: must be a whole number"):
        service.truncate("cl100k_base", ["x"], "3")
    with pytest.raises(InvalidRequest) as caught:
        service.chunk("cl100k_base", ["fine", b"raw bytes"], 4)
    assert caught.value.field == "inputs[1]"


def test_an_unmeetable_budget_names_the_item_and_the_argument(service):
    with pytest.raises(BatchItemError) as caught:
        service.chunk("cl100k_base", ["fine text", "🤖"], 2)
    failure = describe(caught.value)
    assert failure.field == "inputs[1]" and dict(failure.metadata) == {"argument": "max_tokens", "item": 1}
    status, is_bug = to_rpc_status(caught.value)
    assert status.code == code_pb2.INVALID_ARGUMENT and not is_bug
    assert error_from_exception(caught.value).status == 400
    assert error_from_exception(caught.value).body()["error"]["argument"] == "max_tokens"


def test_max_chunks_bounds_the_whole_request_and_the_callers_own_bound_stays_an_argument(registry):
    service = TokenizerService(ServedModels(registry), Limits(max_chunks=10))
    words = " word" * 30  # 30 tokens
    assert sum(map(len, service.chunk("cl100k_base", [words, words], 6).results)) == 10
    for texts in ([words] * 3, [" word" * 200]):  # over the request's limit: refused, from the token count or while chunking
        with pytest.raises(RequestLimitExceeded) as caught:
            service.chunk("cl100k_base", texts, 6)
        assert caught.value.limit_name == "max_chunks" and caught.value.limit == 10
        assert to_rpc_status(caught.value)[0].code == code_pb2.RESOURCE_EXHAUSTED
        assert error_from_exception(caught.value).status == 413
    with pytest.raises(RequestLimitExceeded):
        list(service.chunk_stream("cl100k_base", words * 3, 6))
    with pytest.raises(BatchItemError) as caught:  # the caller's own max_chunks: the engine's InvalidBudgetError
        service.chunk("cl100k_base", [words], 6, max_chunks=4)
    assert describe(caught.value).metadata["argument"] == "max_chunks"


def test_the_deadline_stops_a_chunking_between_two_chunks(service, registry):
    document = TEXT * 200  # ~5,000 tokens: ~700 chunks of 8
    with pytest.raises(DeadlineExpired, match=r"deadline exceeded after 3 chunks of inputs\[0\]"):
        # 1 read of the deadline for the model's load + 1 for the engine's call stop + 1 item check + 3 chunks
        service.chunk("cl100k_base", [document], 8, call=CountdownCall(checks=6))
    stream = service.chunk_stream("cl100k_base", document, 8, call=CountdownCall(checks=7))
    got = []
    with pytest.raises(DeadlineExpired, match="after 5 chunks"):
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 5
    with pytest.raises(CallCancelled, match="after 0 chunks"):
        list(service.chunk_stream("cl100k_base", document, 8, call=CountdownCall(checks=100, active=False)))
    failure = describe(DeadlineExpired(0, 1))
    assert failure.kind is ErrorKind.DEADLINE_EXPIRED


def test_offsets_multiply_the_answer_and_are_bounded_before_it_is_built(registry):
    text = "\x01" * 50_000  # one token per byte
    service = TokenizerService(ServedModels(registry), Limits(max_response_bytes=200_000))
    assert len(service.encode("cl100k_base", [text]).ids[0]) == 50_000  # ids alone fit
    with pytest.raises(RequestLimitExceeded) as caught:
        service.encode_with_offsets("cl100k_base", [text])  # 4 more varints per token do not
    assert caught.value.limit_name == "max_message_bytes"


def test_special_tokens_follow_the_policy(service, oracle):
    with pytest.raises(BatchItemError) as caught:
        service.truncate("cl100k_base", ["ok", "x<|endoftext|>"], 3)
    assert describe(caught.value).metadata == {"token": "<|endoftext|>", "offset": 1, "item": 1}
    with pytest.raises(BatchItemError):
        service.chunk_stream("cl100k_base", "x<|endoftext|>", 3)
    allowed = SpecialTokenPolicy(allowed=frozenset({"<|endoftext|>"}))
    kept = service.truncate("cl100k_base", ["x<|endoftext|>y"], 2, special=allowed).results[0]
    assert kept.ids == oracle.encode("x<|endoftext|>", allowed_special="all")


def test_decode_session_emits_only_complete_characters_and_names_the_message(service, oracle):
    ids = oracle.encode("a 🤖 é")
    session = service.decode_stream("cl100k_base")
    pieces = [session.feed([token]) for token in ids]
    assert "".join(pieces) + session.flush() == "a 🤖 é"
    assert "\ufffd" not in "".join(pieces) and "" in pieces  # the emoji's first tokens complete nothing
    with pytest.raises(BatchItemError) as caught:
        session.feed([100261])
    assert describe(caught.value).field == f"messages[{len(ids) + 1}]"
    strict = service.decode_stream("cl100k_base", errors="strict")
    assert strict.feed(oracle.encode("🤖")[:1]) == ""
    with pytest.raises(BatchItemError) as caught:
        strict.flush()
    assert describe(caught.value).reason == "UNICODE_DECODE_ERROR"
    with pytest.raises(InvalidRequest):
        service.decode_stream("cl100k_base", errors="ignore")


def test_a_model_without_offsets_is_a_failed_precondition_on_every_front_end():
    from tokend.cli.main import _failure

    error = BatchItemError("inputs[2]", 2, OffsetsUnavailableError("t5-small", 7))
    failure = describe(error)
    assert failure.kind is ErrorKind.UNSUPPORTED and failure.field == "inputs[2]"
    assert dict(failure.metadata) == {"model": "t5-small", "position": 7, "item": 2}
    status, is_bug = to_rpc_status(error)
    assert status.code == code_pb2.FAILED_PRECONDITION and not is_bug
    info = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(info) == 1
    http = error_from_exception(error)
    assert (http.status, http.body()["error"]["model"], http.body()["error"]["position"]) == (422, "t5-small", 7)
    exit_status, line = _failure(error)
    assert exit_status == 1 and "rewrites the text" in line


def test_a_normalizing_family_is_refused_with_the_model_and_position_through_the_service():
    from types import SimpleNamespace

    from engine._sentencepiece_family import family

    encoding = family("nfkc")  # a SentencePieceEncoding of the trainer's defaults: NFKC, extra spaces removed
    loaded = SimpleNamespace(name="nfkc", version=1, encoding=encoding)

    class OneModel:
        def load(self, ref, call=None):
            return loaded

    service = TokenizerService(OneModel(), Limits())
    assert service.truncate("nfkc", ["Alice was beginning"], 3).results[0].ids  # text it spells: fine
    for call in (
        lambda: service.encode_with_offsets("nfkc", ["fine", "two  spaces ﬁ"]),
        lambda: service.chunk("nfkc", ["fine", "two  spaces ﬁ"], 4),
    ):
        with pytest.raises(BatchItemError) as caught:
            call()
        failure = describe(caught.value)
        assert failure.kind is ErrorKind.UNSUPPORTED and failure.field == "inputs[1]"
        assert failure.metadata["model"] == "nfkc" and failure.metadata["position"] == 4
        assert to_rpc_status(caught.value)[0].code == code_pb2.FAILED_PRECONDITION


def _backref_service():
    """A service of one model whose split pattern only the `regex` module runs and that backtracks on runs of
    "a" (a backreference): each call's time is bounded by shared_regex_time."""
    from types import SimpleNamespace

    from support.tokenizer_json import gpt2_tokenizer_json
    from tokend.engine import Encoding, parse_tokenizer_json

    document = gpt2_tokenizer_json()
    document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"(a|aa)+\1b|\s+|."}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}  # fmt: skip
    loaded = SimpleNamespace(name="backref", version=1, encoding=Encoding.from_model(parse_tokenizer_json(document, name="backref").model))

    class OneModel:
        def load(self, ref, call=None):
            return loaded

    return TokenizerService(OneModel(), Limits())


def test_re_splitting_a_text_earns_no_more_regex_time():
    """Chunking splits windows of its text again for every chunk (an overlap of 199 in 200: ~200 times). The
    request's regex time is 0.5 s + 10 us a character of its own input, whatever is split again: here the
    document (~2,600 characters, ~6 us a character to split once) is stopped at ~0.53 s, where the time grew
    with every character split again (3.6 s, answered OK; a 48 KB document had 97 s)."""
    service = _backref_service()
    text = " ".join(["a" * 10 + "c"] * 240)
    for chunked in (lambda: service.chunk("backref", [text], 200, 199), lambda: list(service.chunk_stream("backref", text, 200, 199))):
        with pytest.raises(BatchItemError, match=r"longer than the 0\.53 s one request's texts may take together"):
            chunked()


def test_a_chunk_streams_later_chunks_spend_its_requests_regex_time():
    """A ChunkStream encodes its chunks as the client reads them, after chunk_stream returned; those encodes
    spend the request's regex-fallback time (0.5 s + 10 us a character, shared_regex_time) with its
    whole-text pass. Here the pass takes ~0.35 s of a split pattern that backtracks, and the chunks as much
    again: the stream stops with the shared bound's error (each chunk had its own 0.5 s: 0.77 s answered OK,
    and 2.9 s for a larger document)."""
    import time

    service = _backref_service()
    word = "a" * 24 + "c"  # the pattern's first alternative backtracks at each "a" before "." takes it
    started = time.thread_time()
    service.encode("backref", [word])
    words = max(2, round(0.35 / (time.thread_time() - started)))  # a whole-text pass of ~0.35 s on this machine
    stream = service.chunk_stream("backref", " ".join([word] * words), len(word) + 1)  # about a word a chunk
    with pytest.raises(BatchItemError, match="one request's texts may take together"):
        list(stream)
