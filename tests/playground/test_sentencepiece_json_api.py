"""The playground's JSON API over a SentencePiece model (Mistral 7B instruct v3's `.model`, imported into a
registry): the model's details name its algorithm and BOS/EOS/UNK tokens, token detail and offsets hold to
`sentencepiece` itself. In process (PlaygroundApi over the registry), as the page's endpoints call it.
"""

from __future__ import annotations

import pytest
import sentencepiece

from tests.engine.sentencepiece.models import model_bytes
from tokend.playground.api import PlaygroundApi
from tokend.registry import Registry
from tokend.registry.importing import import_files

TEXT = "Héllo wörld 😀 [INST]"


@pytest.fixture(scope="module")
def oracle() -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes("mistral_v3"))


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> PlaygroundApi:
    directory = tmp_path_factory.mktemp("sentencepiece-json")
    path = directory / "tokenizer.model.v3"
    path.write_bytes(model_bytes("mistral_v3"))
    registry = Registry.open(directory / "models", create=True)
    import_files(registry, [path], name="mistral", provenance={"kind": "imported", "command": "test"})
    return PlaygroundApi(registry)


def test_model_details_name_the_algorithm_and_the_role_tokens(api, oracle):
    details = api.model("mistral")
    assert details["algorithm"] == "sentencepiece-bpe"
    assert details["n_vocab"] == oracle.get_piece_size() and details["pattern"] == ""
    for role, token_id in (("bos", oracle.bos_id()), ("eos", oracle.eos_id()), ("unk", oracle.unk_id())):
        assert details[f"{role}_token"] == {"text": oracle.id_to_piece(token_id), "id": token_id}
    assert details["pad_token"] is None and oracle.pad_id() == -1
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(oracle.serialized_model_proto())
    assert details["normalizer"] == model.normalizer_spec.name


def test_byte_level_models_say_so(api):
    details = PlaygroundApi(Registry.open()).model("cl100k_base")
    assert details["algorithm"] == "byte_level_bpe" and details["normalizer"] is None
    assert [details[f"{role}_token"] for role in ("bos", "eos", "unk", "pad")] == [None] * 4


def test_token_detail_and_offsets_are_sentencepieces(api, oracle):
    answer = api.encode({"model": "mistral", "text": TEXT, "detail": True, "offsets": True, "disallowed_special": []})
    ids = oracle.encode(TEXT)
    result = answer["results"][0]
    assert result["ids"] == ids
    # each token's bytes, joined, are the text (identity normalizer, byte fallback): the page can draw them
    assert b"".join(bytes.fromhex(token["hex"]) for token in result["tokens"]).decode() == " " + TEXT
    # the byte span of each token in the input is the one sentencepiece gives its piece
    pieces = oracle.encode(TEXT, return_type="proto").pieces
    assert [tuple(span) for span in result["byte_offsets"]] == [(piece.begin, piece.end) for piece in pieces]


def test_pieces_are_drawn_legibly(api, oracle):
    """`▁` is a space (the page marks it), a byte-fallback piece is its byte, a control piece its name."""
    text = "[INST] a \ua66e"  # ꙮ is not a piece of Mistral's vocabulary: byte fallback
    # with offsets, as the page asks (a control piece covers its own text)
    answer = api.encode({"model": "mistral", "text": text, "detail": True, "offsets": True, "allowed_special": "all"})
    # "[INST]" covers itself; " a ꙮ" is a text of its own, whose dummy-prefix "▁" spans nothing (as sentencepiece)
    assert answer["results"][0]["offsets"][:2] == [[0, 6], [6, 6]]
    tokens = answer["results"][0]["tokens"]
    pieces = [oracle.id_to_piece(token["id"]) for token in tokens]
    assert pieces[0] == "[INST]" and tokens[0] == {"id": oracle.piece_to_id("[INST]"), "hex": "", "text": "[INST]", "special": True}
    assert pieces[-3:] == ["<0xEA>", "<0x99>", "<0xAE>"]
    for piece, token in zip(pieces[1:], tokens[1:]):
        if piece.startswith("<0x"):  # a byte on its own is not UTF-8: the page shows the byte
            assert (token["hex"], token["text"]) == (piece[3:5].lower(), None)
        else:
            assert token["text"] == piece.replace("\u2581", " ") and not token["special"]
