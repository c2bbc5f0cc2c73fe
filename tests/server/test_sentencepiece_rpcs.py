"""The service serves SentencePiece models like any other: a real server over a registry holding Mistral 7B
instruct v3's `.model` (imported as a sentencepiece model) answers Encode, CountTokens, Decode and GetModel,
with `sentencepiece` itself as the oracle of every id and text.
"""

from __future__ import annotations

import grpc
import pytest
import sentencepiece

from support.server import TokendServer
from tests.engine.sentencepiece.models import model_bytes
from tokend.registry import Registry
from tokend.registry.importing import import_files
from tokend_api.v1 import tokenizer_pb2 as pb

from .conftest import SMALL_LIMITS, rpc_error

Mode = pb.SpecialTokenSet.Mode
MODEL = "mistral"
NFKC_MODEL = "nfkc"  # spm_train's defaults: nmt_nfkc, extra whitespace removed (its tokens do not spell the text)
SUFFIX_MODEL = "suffix"  # Llama 2's options with treat_whitespace_as_suffix: "Hi" is "Hi▁"
TEXTS = [
    "Hello world",
    "",
    "  leading spaces and\ttabs\n\nnew lines  ",
    "Héllo wörld — naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어 😀",
    "def f(x):\n    return x ** 2  # squares\n",
    "[INST] is text unless allowed [/INST]",
]


@pytest.fixture(scope="module")
def oracle() -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes("mistral_v3"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sentencepiece")
    path = directory / "tokenizer.model"
    path.write_bytes(model_bytes("mistral_v3"))
    registry = Registry.open(directory / "models", create=True)
    manifest = import_files(registry, [path], name=MODEL, provenance={"kind": "imported", "command": "test"})
    assert manifest.payload_format == "sentencepiece_model"
    registry.publish(NFKC_MODEL, payload=model_bytes("nmt_nfkc"), payload_format="sentencepiece_model",
                     provenance={"kind": "imported"})
    registry.publish(SUFFIX_MODEL, payload=model_bytes("suffix"), payload_format="sentencepiece_model",
                     provenance={"kind": "imported"})
    started = TokendServer(*SMALL_LIMITS, registry=directory / "models", workers=1, metrics=False).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def stub(server):
    return server.stub()


def _inputs(texts):
    return [pb.Input(text=text) for text in texts]


def test_encode_count_decode_are_sentencepieces(stub, oracle):
    from corpus import corpus_texts

    texts = TEXTS + corpus_texts(limit_bytes=20_000)[:40]
    ordinary = pb.SpecialTokenPolicy(disallowed=pb.SpecialTokenSet(mode=Mode.MODE_NONE))
    expected = [oracle.encode(text) for text in texts]
    response = stub.Encode(pb.EncodeRequest(model=MODEL, inputs=_inputs(texts), special_tokens=ordinary), timeout=60)
    assert (response.model.name, response.model.version) == (MODEL, 1)
    assert [list(result.ids) for result in response.results] == expected
    counts = stub.CountTokens(pb.CountTokensRequest(model=MODEL, inputs=_inputs(texts), special_tokens=ordinary), timeout=60)
    assert list(counts.counts) == [len(ids) for ids in expected]
    with_controls = [[1, *ids, 2] for ids in expected]  # <s> ... </s> decode to nothing, as in sentencepiece
    decoded = stub.Decode(pb.DecodeRequest(model=MODEL, inputs=[pb.TokenIds(ids=ids) for ids in with_controls]), timeout=60)
    assert [result.text for result in decoded.results] == [oracle.decode(ids) for ids in with_controls]


def test_special_tokens_follow_the_policy(stub, oracle):
    text = "[INST] hi [/INST]"
    error = rpc_error(stub.Encode, pb.EncodeRequest(model=MODEL, inputs=_inputs([text])), timeout=10)
    assert "[INST]" in error.details()
    allowed = pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=Mode.MODE_ALL))
    ids = list(stub.Encode(pb.EncodeRequest(model=MODEL, inputs=_inputs([text]), special_tokens=allowed), timeout=10).results[0].ids)
    # each stretch between special tokens is its own sentence (its own dummy prefix), as llama.cpp's parse_special
    assert ids == [oracle.piece_to_id("[INST]"), *oracle.encode(" hi "), oracle.piece_to_id("[/INST]")]


def _normalizer_name(oracle) -> str:
    """The normalizer's name as sentencepiece reads it from the model."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(oracle.serialized_model_proto())
    return model.normalizer_spec.name


def test_get_model_describes_it(stub, oracle):
    details = stub.GetModel(pb.GetModelRequest(model=MODEL), timeout=10).details
    assert (details.n_vocab, details.max_token_value) == (oracle.get_piece_size(), oracle.get_piece_size() - 1)
    assert (details.pattern, details.payload_format) == ("", "sentencepiece")
    assert details.special_tokens["<s>"] == oracle.bos_id() and details.special_tokens["[INST]"] == oracle.piece_to_id("[INST]")
    assert details.eot_token == oracle.eos_id()
    assert details.algorithm == "sentencepiece-bpe"
    assert details.normalizer == _normalizer_name(oracle)
    named = {role: (token.text, token.id) for role in ("bos", "eos", "unk") for token in [getattr(details, f"{role}_token")]}
    assert named == {role: (oracle.id_to_piece(token_id), token_id)
                     for role, token_id in (("bos", oracle.bos_id()), ("eos", oracle.eos_id()), ("unk", oracle.unk_id()))}
    assert oracle.pad_id() == -1 and not details.HasField("pad_token")


def test_unknown_ids_are_refused_by_name(stub, oracle):
    error = rpc_error(stub.Decode, pb.DecodeRequest(model=MODEL, inputs=[pb.TokenIds(ids=[1, oracle.get_piece_size()])]), timeout=10)
    assert str(oracle.get_piece_size()) in error.details()


def test_the_client_reads_the_algorithm_and_role_tokens(server, oracle):
    import tokend_client

    with tokend_client.TokendClient(server.target, timeout=30) as client:
        details = client.get_model(MODEL)
    assert details.algorithm == "sentencepiece-bpe"
    assert details.normalizer == _normalizer_name(oracle)
    assert (details.bos_token, details.eos_token, details.unk_token, details.pad_token) == (
        ("<s>", oracle.bos_id()), ("</s>", oracle.eos_id()), (oracle.id_to_piece(oracle.unk_id()), oracle.unk_id()), None)


def test_the_clients_decoder_is_sentencepieces_and_refuses_a_local_table(server, oracle):
    """A table of token bytes cannot decode SentencePiece exactly (a byte run decodes on its own, one U+FFFD a
    malformed byte, a control piece ends it): mode="local" refuses by name; "auto" streams from the server."""
    import tokend_client

    byte = {value: oracle.piece_to_id(f"<0x{value:02X}>") for value in (0xE2, 0x9F, 0xED, 0x80)}
    sequences = [[byte[0xE2], byte[0x9F], 2, byte[0x9F]], [byte[0xED], byte[0x80]], oracle.encode("Hi 😀 there")]
    with tokend_client.TokendClient(server.target, timeout=30) as client:
        encoding = client.get_encoding(MODEL)
        with pytest.raises(ValueError, match=r"mode='local' is not exact for mistral@1 \(sentencepiece-bpe\)"):
            encoding.decoder(mode="local")
        for ids in sequences:
            with encoding.decoder() as decoder:
                text = "".join(decoder.feed([token]) for token in ids) + decoder.flush()
            assert text == oracle.decode(ids)


BUDGET_TEXTS = [text for text in TEXTS if text and "[INST]" not in text]


def test_offsets_are_sentencepieces_spans(stub, oracle):
    response = stub.Encode(pb.EncodeRequest(model=MODEL, inputs=_inputs(BUDGET_TEXTS), offsets=True), timeout=30)
    for text, result, offsets in zip(BUDGET_TEXTS, response.results, response.offsets):
        pieces = oracle.encode(text, return_type="proto").pieces
        assert list(result.ids) == [piece.id for piece in pieces]
        assert list(zip(offsets.byte_starts, offsets.byte_ends)) == [(piece.begin, piece.end) for piece in pieces], text


def test_truncate_and_chunk_hold_budgets_on_sentencepieces_own_encoding(stub, oracle):
    truncated = stub.Truncate(pb.TruncateRequest(model=MODEL, inputs=_inputs(BUDGET_TEXTS), max_tokens=5), timeout=30)
    for text, kept in zip(BUDGET_TEXTS, truncated.results):
        assert kept.start == 0 and len(kept.ids) <= 5
        assert list(kept.ids) == oracle.encode(text[: kept.end]), text
    chunked = stub.Chunk(pb.ChunkRequest(model=MODEL, inputs=_inputs(BUDGET_TEXTS), max_tokens=6), timeout=30)
    for text, result in zip(BUDGET_TEXTS, chunked.results):
        chunks = list(result.chunks)
        assert "".join(text[chunk.start : chunk.end] for chunk in chunks) == text
        for chunk in chunks:
            assert 0 < len(chunk.ids) <= 6
            assert list(chunk.ids) == oracle.encode(text[chunk.start : chunk.end]), (text, chunk.start)


def test_whitespace_as_suffix_has_sentencepieces_spans_truncations_and_chunks(stub):
    """The dummy mark is the last token's: it spans nothing, and a leading space is the text's own."""
    suffix_oracle = sentencepiece.SentencePieceProcessor(model_proto=model_bytes("suffix"))
    texts = BUDGET_TEXTS + [" ", " a  b "]
    response = stub.Encode(pb.EncodeRequest(model=SUFFIX_MODEL, inputs=_inputs(texts), offsets=True), timeout=30)
    for text, result, offsets in zip(texts, response.results, response.offsets):
        pieces = suffix_oracle.encode(text, return_type="proto").pieces
        assert list(result.ids) == [piece.id for piece in pieces]
        spans = list(zip(offsets.byte_starts, offsets.byte_ends))
        # byte pieces: sentencepiece gives the whole character to the last one, tokend each its own byte
        whole = [index for index, piece in enumerate(pieces) if not suffix_oracle.is_byte(piece.id)]
        assert [spans[index] for index in whole] == [(pieces[index].begin, pieces[index].end) for index in whole], text
    for side in (pb.TruncateRequest.SIDE_RIGHT, pb.TruncateRequest.SIDE_LEFT):
        truncated = stub.Truncate(pb.TruncateRequest(model=SUFFIX_MODEL, inputs=_inputs(texts), max_tokens=5, side=side), timeout=30)
        for text, kept in zip(texts, truncated.results):
            assert len(kept.ids) <= 5 and list(kept.ids) == suffix_oracle.encode(text[kept.start : kept.end]), text
    chunked = stub.Chunk(pb.ChunkRequest(model=SUFFIX_MODEL, inputs=_inputs(texts), max_tokens=6), timeout=30)
    for text, result in zip(texts, chunked.results):
        assert "".join(text[chunk.start : chunk.end] for chunk in result.chunks) == text
        for chunk in result.chunks:
            assert 0 < len(chunk.ids) <= 6 and list(chunk.ids) == suffix_oracle.encode(text[chunk.start : chunk.end])


def test_a_model_whose_tokens_do_not_spell_the_text_refuses_offsets_by_name(stub):
    text = "two  spaces"  # nmt_nfkc removes the extra space: no token holds it
    error = rpc_error(stub.Encode, pb.EncodeRequest(model=NFKC_MODEL, inputs=_inputs(["fine", text]), offsets=True), timeout=10)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert NFKC_MODEL in error.details() and "inputs[1]" in error.details()
    error = rpc_error(stub.Chunk, pb.ChunkRequest(model=NFKC_MODEL, inputs=_inputs([text]), max_tokens=4), timeout=10)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    # text it spells is fine
    fine = stub.Encode(pb.EncodeRequest(model=NFKC_MODEL, inputs=_inputs(["fine"]), offsets=True), timeout=10)
    assert len(fine.offsets[0].starts) == len(fine.results[0].ids) > 0
