"""The service serves SentencePiece models like any other: a real server over a registry holding Mistral 7B
instruct v3's `.model` (imported as a sentencepiece model) answers Encode, CountTokens, Decode and GetModel,
with `sentencepiece` itself as the oracle of every id and text.
"""

from __future__ import annotations

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


def test_get_model_describes_it(stub, oracle):
    details = stub.GetModel(pb.GetModelRequest(model=MODEL), timeout=10).details
    assert (details.n_vocab, details.max_token_value) == (oracle.get_piece_size(), oracle.get_piece_size() - 1)
    assert (details.pattern, details.payload_format) == ("", "sentencepiece")
    assert details.special_tokens["<s>"] == oracle.bos_id() and details.special_tokens["[INST]"] == oracle.piece_to_id("[INST]")
    assert details.eot_token == oracle.eos_id()
    assert details.algorithm == "sentencepiece-bpe"
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
    assert (details.bos_token, details.eos_token, details.unk_token, details.pad_token) == (
        ("<s>", oracle.bos_id()), ("</s>", oracle.eos_id()), (oracle.id_to_piece(oracle.unk_id()), oracle.unk_id()), None)
