"""One suite for the token budgets of the in-process engine and the remote client (blocking and asyncio,
against a real `tokend serve`): offsets, truncation, chunking and streaming decode must give the same
results, the same result fields and the same exception classes. tiktoken is held to it where it has the
method (`decode_with_offsets`, the ids of every kept part and chunk). The budget semantics themselves are
proved against tiktoken in tests/engine/test_budget*.py; here remote == local, on hypothesis-generated
text, for the OpenAI models.
"""

from __future__ import annotations

import asyncio

import pytest
import tiktoken
from client_async_facade import BlockingFacade
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokend
import tokend_client

IMPLEMENTATIONS = ["tokend-local", "remote", "remote-async"]
MODELS = ["cl100k_base", "o200k_base"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Hostile text: emoji ZWJ sequences, combining marks, CJK without spaces, blank lines, no whitespace at all.
PIECES = ["a", "b", "word", " ", ".", ",", "!", "?", "\n", "\n\n", "\t", "é", "e\u0301", "語", "👩‍👩‍👧", "🇩🇪",
          "🤖", "Ω", "  ", "12"]
# Special-token text ("<|endoftext|>"; hypothesis also draws string constants of the code under test) follows
# the special-token policy, which has its own test: here every "<|" is cut to "<", so the text is ordinary.
TEXTS = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(PIECES), max_size=40).map("".join)).map(
    lambda text: text.replace("<|", "<"))


class AsyncEncoding:
    """An AsyncRemoteEncoding driven from blocking code, iter_chunks and decoder included."""

    def __init__(self, encoding, runner) -> None:
        self._facade = BlockingFacade(encoding, runner)
        self._encoding = encoding
        self._runner = runner

    def __getattr__(self, name):
        return getattr(self._facade, name)

    def iter_chunks(self, *args, **kwargs):
        async def collect():
            return [chunk async for chunk in await self._encoding.iter_chunks(*args, **kwargs)]

        return iter(self._runner.run(collect()))

    def decoder(self, *args, **kwargs):
        return BlockingFacade(self._runner.run(self._encoding.decoder(*args, **kwargs)), self._runner)


@pytest.fixture(scope="module")
def encodings(request):
    built: dict[tuple[str, str], object] = {}

    def get(implementation: str, model: str):
        key = (implementation, model)
        if key not in built:
            if implementation == "tokend-local":
                built[key] = tokend.get_encoding(model)
            elif implementation == "remote":
                built[key] = request.getfixturevalue("client").get_encoding(model)
            else:
                facade = request.getfixturevalue("async_client")
                runner = request.getfixturevalue("async_runner")
                built[key] = AsyncEncoding(facade.get_encoding(model), runner)
        return built[key]

    return get


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request) -> str:
    return request.param


@pytest.fixture(params=MODELS)
def model(request) -> str:
    return request.param


@pytest.fixture
def encoding(encodings, implementation, model):
    return encodings(implementation, model)


@pytest.fixture
def local(model):
    return tokend.get_encoding(model)


@pytest.fixture(scope="module")
def oracle():
    return {name: tiktoken.get_encoding(name) for name in MODELS}


def _truncation(result):
    return (result.text, result.ids, result.start, result.end, result.total_tokens, result.truncated)


def _chunks(chunks):
    return [(chunk.text, chunk.start, chunk.end, chunk.ids, chunk.token_count) for chunk in chunks]


def _offsets(result):
    return (result.ids, list(result.starts), list(result.ends), list(result.byte_starts), list(result.byte_ends),
            result.spans(), result.byte_spans(), len(result))  # fmt: skip


# -- offsets ----------------------------------------------------------------------------------------------------


@SETTINGS
@given(text=TEXTS)
def test_offsets_equal_local_and_tiktokens_decode_with_offsets(encoding, local, oracle, model, text):
    result = encoding.encode_with_offsets(text)
    assert _offsets(result) == _offsets(local.encode_with_offsets(text))
    assert result.ids == oracle[model].encode(text)
    assert list(result.starts) == oracle[model].decode_with_offsets(result.ids)[1]


def test_offsets_of_lone_surrogates_index_the_callers_string(encoding, local):
    for text in ["x\ud83d\ude00y\ud800z", "\udfff", "a\ud83d\ude00\ud83d\ude00b"]:
        assert _offsets(encoding.encode_with_offsets(text)) == _offsets(local.encode_with_offsets(text))
        assert _truncation(encoding.truncate(text, 2)) == _truncation(local.truncate(text, 2))
        assert _chunks(encoding.chunk(text, 4)) == _chunks(local.chunk(text, 4))


def test_offsets_follow_the_special_token_policy(encoding, local):
    text = "a<|endoftext|>b"
    assert _offsets(encoding.encode_with_offsets(text, allowed_special="all")) == _offsets(
        local.encode_with_offsets(text, allowed_special="all"))
    with pytest.raises(ValueError) as caught:
        encoding.encode_with_offsets(text)
    assert (caught.value.token, caught.value.offset) == ("<|endoftext|>", 1)


# -- truncation -------------------------------------------------------------------------------------------------


@SETTINGS
@given(text=TEXTS, max_tokens=st.integers(0, 40), side=st.sampled_from(["right", "left"]))
def test_truncate_equals_local(encoding, local, oracle, model, text, max_tokens, side):
    result = encoding.truncate(text, max_tokens, side)
    assert _truncation(result) == _truncation(local.truncate(text, max_tokens, side))
    assert result.ids == oracle[model].encode(result.text) and len(result.ids) <= max_tokens


def test_truncate_batch_equals_truncate_of_each(encoding, local):
    texts = ["The quick brown fox jumps over the lazy dog.", "", "🤖🤖🤖", "short"]
    assert [_truncation(r) for r in encoding.truncate_batch(texts, 4, "left")] == [
        _truncation(local.truncate(text, 4, "left")) for text in texts]


# -- chunking ---------------------------------------------------------------------------------------------------


@SETTINGS
@given(
    text=TEXTS, max_tokens=st.integers(3, 30), overlap_fraction=st.floats(0, 0.9),
    prefer=st.sampled_from(["paragraph", "sentence", "whitespace", "token"]),
)  # fmt: skip
def test_chunk_and_iter_chunks_equal_local(encoding, local, oracle, model, text, max_tokens, overlap_fraction, prefer):
    overlap = int(overlap_fraction * max_tokens)
    try:
        expected = local.chunk(text, max_tokens, overlap, prefer)
    except tokend.InvalidBudgetError as error:  # a stretch of the text needs more than max_tokens on its own
        with pytest.raises(ValueError) as caught:
            encoding.chunk(text, max_tokens, overlap, prefer)
        assert caught.value.argument == error.argument == "max_tokens"
        return
    assert _chunks(encoding.chunk(text, max_tokens, overlap, prefer)) == _chunks(expected)
    assert _chunks(encoding.iter_chunks(text, max_tokens, overlap, prefer)) == _chunks(expected)
    for chunk in expected:
        assert chunk.ids == oracle[model].encode(chunk.text)


def test_chunk_batch_equals_chunk_of_each(encoding, local):
    texts = ["One. Two. Three.\n\nFour five six seven.", "", "x"]
    assert [_chunks(c) for c in encoding.chunk_batch(texts, 3, prefer="sentence")] == [
        _chunks(local.chunk(text, 3, prefer="sentence")) for text in texts]


def test_a_long_document_streams_in_many_messages(encoding, local):
    document = "A sentence of a long document, with words. " * 4000  # ~40,000 tokens, ~170 KB
    streamed = encoding.iter_chunks(document, 64, overlap=8, prefer="sentence")
    assert _chunks(streamed) == _chunks(local.chunk(document, 64, overlap=8, prefer="sentence"))


# -- arguments and errors: the same classes and attributes ------------------------------------------------------


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda enc: enc.truncate("x", -1), "max_tokens"),
        (lambda enc: enc.truncate("x", 1, "middle"), "side"),
        (lambda enc: enc.chunk("x", 0), "max_tokens"),
        (lambda enc: enc.chunk("x", 4, 4), "overlap"),
        (lambda enc: enc.chunk("x", 4, -1), "overlap"),
        (lambda enc: enc.chunk("x", 4, prefer="chapter"), "prefer"),
        (lambda enc: enc.chunk("🧪", 2), "max_tokens"),
        (lambda enc: enc.chunk(" a b c d e", 1, max_chunks=3), "max_chunks"),
        (lambda enc: list(enc.iter_chunks("🧪", 2)), "max_tokens"),
        (lambda enc: enc.iter_chunks("x", 4, prefer="chapter"), "prefer"),
    ],
)
def test_budget_errors_are_invalid_budget_errors_naming_the_argument(encoding, call, argument):
    with pytest.raises(ValueError) as caught:
        call(encoding)
    assert isinstance(caught.value, (tokend.InvalidBudgetError, tokend_client.InvalidBudgetError))
    assert caught.value.argument == argument


@pytest.mark.parametrize(
    "call",
    [
        lambda enc: enc.truncate("x", "3"),
        lambda enc: enc.truncate("x", 1.5),
        lambda enc: enc.chunk("x", 3, overlap=None),
        lambda enc: enc.chunk("x", 3, max_chunks=0),
    ],
)
def test_wrong_types_are_type_errors(encoding, call):
    with pytest.raises(TypeError):
        call(encoding)


def test_special_tokens_raise_as_encode_does(encoding):
    for call in (lambda: encoding.truncate("x<|endoftext|>", 3), lambda: encoding.chunk("x<|endoftext|>", 3),
                 lambda: list(encoding.iter_chunks("x<|endoftext|>", 3))):  # fmt: skip
        with pytest.raises(ValueError) as caught:
            call()
        assert (caught.value.token, caught.value.offset) == ("<|endoftext|>", 1)


def test_batch_errors_name_the_argument_and_the_remote_ones_the_item(encoding, implementation):
    with pytest.raises(ValueError) as caught:
        encoding.chunk_batch(["fine", "🧪"], 2)
    assert caught.value.argument == "max_tokens"
    if implementation != "tokend-local":  # the engine's loop raises the item's own error, as one chunk call would
        assert caught.value.item == 1


# -- streaming decode -------------------------------------------------------------------------------------------


# (implementation, mode): the engine's decoder, and the client's three (docs/client.md, "Streaming decode").
DECODERS = [("tokend-local", None)] + [(impl, mode) for impl in ("remote", "remote-async") for mode in ("auto", "local", "stream")]


@pytest.fixture(params=DECODERS, ids=lambda param: f"{param[0]}-{param[1] or 'engine'}")
def make_decoder(request, encodings, model):
    implementation, mode = request.param
    encoding = encodings(implementation, model)
    return lambda errors="replace": encoding.decoder(errors) if mode is None else encoding.decoder(errors, mode=mode)


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(0, 60), max_size=6), drop=st.integers(0, 3))
def test_split_anywhere_the_decoder_equals_decode(make_decoder, oracle, model, text, cuts, drop):
    ids = oracle[model].encode(text)
    ids = ids[: len(ids) - drop] if drop < len(ids) else ids  # often ends inside a character
    decoder = make_decoder()
    pieces, start = [], 0
    for cut in sorted(min(cut, len(ids)) for cut in cuts) + [len(ids)]:
        pieces.append(decoder.feed(ids[start:cut]))
        start = cut
    pieces.append(decoder.flush())
    assert "".join(pieces) == oracle[model].decode(ids)  # errors="replace" at the end, tiktoken's decode
    assert "".join(pieces[:-1]).count("\ufffd") <= oracle[model].decode(ids).count("\ufffd")


def test_one_id_at_a_time_over_a_multibyte_character(make_decoder, oracle, model):
    ids = oracle[model].encode(" 𝔘語")
    decoder = make_decoder()
    pieces, pending = [], []
    for token in ids:
        pieces.append(decoder.feed(token))
        pending.append(decoder.pending)
    assert "".join(pieces) == " 𝔘語" and decoder.flush() == ""
    assert "" in pieces[1:] and any(pending)  # a character arrived over several ids: held back, then whole
    assert all("\ufffd" not in piece for piece in pieces)


def test_decoder_errors(make_decoder, encodings, oracle, model):
    decoder = make_decoder("strict")
    partial = oracle[model].encode("🤖")[:1]
    assert decoder.feed(partial) == ""
    with pytest.raises(UnicodeDecodeError):
        decoder.flush()
    unknown = oracle[model].max_token_value + 1
    with pytest.raises(KeyError) as caught:
        decoder.feed([unknown])
    assert caught.value.token_id == unknown
    assert decoder.feed(oracle[model].encode("ok")) == "ok"
    with pytest.raises(ValueError):
        make_decoder("no-such-handler")


def test_local_decoders_take_any_error_handler(encoding, oracle, model):
    decoder = encoding.decoder("backslashreplace")
    partial = oracle[model].encode("🤖")[:1]
    decoder.feed(partial)
    assert decoder.flush() == oracle[model].decode(partial, errors="backslashreplace")


def test_an_unknown_mode_is_refused(encodings):
    with pytest.raises(ValueError, match="mode"):
        encodings("remote", "cl100k_base").decoder(mode="somewhere")


def test_the_async_decoder_is_awaited_and_closes(async_client, async_runner):
    encoding = async_client.get_encoding("cl100k_base")

    async def run():
        ids = tiktoken.get_encoding("cl100k_base").encode("héllo 🤖")
        texts = []
        for mode in ("auto", "local", "stream"):
            async with await encoding.decoder(mode=mode) as decoder:
                texts.append("".join([await decoder.feed(token) for token in ids]) + await decoder.flush())
        return texts

    assert async_runner.run(run()) == ["héllo 🤖"] * 3
    assert asyncio.iscoroutinefunction(encoding.decoder)
