"""SentencePiece models in the registry: a `.model` file and a GGUF file's tokenizer imported, published,
verified, loaded back and held to sentencepiece (and, for the GGUF, to llama.cpp's own reference vectors).

Fixtures: Mistral's `.model.v3` (mistral-common wheel), llama-cpp-python 0.3.36's sdist `ggml-vocab-llama-spm.gguf`
with its `.inp`/`.out` vectors (llama.cpp's tokenizer test), and a GGUF of a tokenizer type tokend does not
import, written here with the `gguf` package.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from support.package_files import pypi_file
from tokend.engine.sentencepiece import SentencePieceEncoding
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry import Registry
from tokend.registry.gguf_tokenizer import read_gguf_tokenizer
from tokend.registry.importing import import_files

from tests.engine.sentencepiece.models import LLAMA_CPP_SDIST, model_bytes, oracle

GGUF_DIR = "vendor/llama.cpp/models"


def gguf_file(name: str) -> Path:
    return pypi_file(*LLAMA_CPP_SDIST, f"{GGUF_DIR}/{name}", sdist=True)


def bert_gguf(directory: Path) -> Path:
    """A minimal GGUF whose tokenizer.ggml.model is "bert" (WordPiece, which tokend does not import), written
    with llama.cpp's `gguf`."""
    import gguf

    path = directory / "tiny-bert.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_tokenizer_model("bert")
    writer.add_token_list(["a", "b", "ab"])
    writer.add_token_merges(["a b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@lru_cache(maxsize=None)
def imported_llama():
    return read_gguf_tokenizer(gguf_file("ggml-vocab-llama-spm.gguf"))


def llama_vectors(name: str = "llama-spm") -> list[tuple[str, list[int]]]:
    """llama.cpp's test-tokenizer-0 cases: texts separated by `__ggml_vocab_test__` lines, ids one line each."""
    texts = gguf_file(f"ggml-vocab-{name}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    lines = gguf_file(f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    assert len(texts) == len(lines) > 40
    return [(text, [int(part) for part in line.split()]) for text, line in zip(texts, lines)]


def test_publish_and_load_a_sentencepiece_model(tmp_path):
    data = model_bytes("mistral_v3")
    registry = Registry.open(tmp_path / "models", create=True)
    manifest = registry.publish("mistral", payload=data, payload_format="sentencepiece_model", provenance={"kind": "imported"})
    assert (manifest.payload_format, manifest.pattern, manifest.n_vocab) == ("sentencepiece_model", "", 32768)
    assert manifest.special_tokens["<s>"] == 1 and manifest.special_tokens["[INST]"] == 3
    assert (manifest.family, manifest.normalizer, manifest.bos_token, manifest.eos_token) == (
        "sentencepiece-bpe", "identity", "<s>", "</s>")
    theirs = oracle("mistral_v3")
    assert (manifest.unk_token, manifest.pad_token, theirs.pad_id()) == (theirs.id_to_piece(theirs.unk_id()), None, -1)
    assert (tmp_path / "models" / "mistral" / "1" / "tokenizer.model").read_bytes() == data
    reopened = Registry.open(tmp_path / "models")
    encoding = reopened.get_encoding("mistral@1")
    assert isinstance(encoding, SentencePieceEncoding)
    assert (encoding.algorithm, encoding.bos_id, encoding.eos_id, encoding.unk_id, encoding.pad_id) == (
        "sentencepiece-bpe", 1, 2, 0, None)
    text = "Hello [REFERENCE_DOC_3] wörld\n  12345 😀"
    assert encoding.encode(text) == oracle("mistral_v3").encode(text)
    assert [result.ok for result in reopened.verify()] == [True]


def test_the_manifest_names_unk_and_pad_as_sentencepiece_does(tmp_path):
    """A model with a PAD piece (spm_train --pad_id): the manifest names it, as sentencepiece's pad_id() does."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes("botchan_bpe"))
    pad = proto.pieces.add()
    pad.piece, pad.type, pad.score = "<pad>", pad.CONTROL, 0.0
    data = proto.SerializeToString()
    theirs = sentencepiece.SentencePieceProcessor(model_proto=data)
    assert theirs.pad_id() == len(proto.pieces) - 1
    registry = Registry.open(tmp_path / "models", create=True)
    manifest = registry.publish("padded", payload=data, payload_format="sentencepiece_model", provenance={"kind": "imported"})
    named = (manifest.bos_token, manifest.eos_token, manifest.unk_token, manifest.pad_token)
    assert named == tuple(theirs.id_to_piece(i) for i in (theirs.bos_id(), theirs.eos_id(), theirs.unk_id(), theirs.pad_id()))
    stored = (tmp_path / "models" / "padded" / "1" / "manifest.json").read_text()
    assert '"unk_token": "<unk>"' in stored and '"pad_token": "<pad>"' in stored
    assert Registry.open(tmp_path / "models").get_encoding("padded").pad_id == theirs.pad_id()


def test_manifest_must_agree_with_the_model(tmp_path):
    registry = Registry.open(tmp_path / "models", create=True)
    with pytest.raises(ModelFormatError, match="no split pattern"):
        registry.publish("m", payload=model_bytes("mistral_v1"), payload_format="sentencepiece_model",
                         pattern=r"\S+", provenance={"kind": "imported"})
    with pytest.raises(ModelFormatError, match="its own special tokens"):
        registry.publish("m", payload=model_bytes("mistral_v1"), payload_format="sentencepiece_model",
                         special_tokens={"<s>": 5}, provenance={"kind": "imported"})
    from sentencepiece import sentencepiece_model_pb2

    char_model = sentencepiece_model_pb2.ModelProto()
    char_model.ParseFromString(model_bytes("botchan_unigram"))
    char_model.trainer_spec.model_type = char_model.trainer_spec.CHAR
    with pytest.raises(ModelFormatError, match="char model"):
        registry.publish("c", payload=char_model.SerializeToString(), payload_format="sentencepiece_model",
                         provenance={"kind": "imported"})
    assert registry.list_models() == []


def test_gguf_llama_tokenizer_matches_llama_cpp_vectors_and_sentencepiece():
    imported = imported_llama()
    assert imported.payload_format == "sentencepiece_model"
    assert imported.settings["tokenizer.ggml.model"] == "llama" and imported.settings["byte_fallback"] is True
    encoding = SentencePieceEncoding.from_model_file("llama", imported.payload)
    import sentencepiece

    theirs = sentencepiece.SentencePieceProcessor(model_proto=imported.payload)
    assert (encoding.n_vocab, encoding.bos_id, encoding.eos_id, encoding.unk_id) == (32000, 1, 2, 0)
    mismatches = []
    for text, want in llama_vectors():
        got = encoding.encode_ordinary(text)
        if not got == want == theirs.encode(text):
            mismatches.append((text[:60], got[:20], want[:20]))
        assert encoding.decode(want) == theirs.decode(want)
    assert mismatches == []


def test_gguf_phi3_with_its_unk_control_and_pads_unknown_imports_and_matches_llama_cpp_vectors(tmp_path):
    """Phi-3's GGUF types `<unk>` CONTROL and 53 `[PAD320nn]` tokens UNKNOWN (sentencepiece wants exactly one
    UNKNOWN): the id `unknown_token_id` names is the UNKNOWN piece, the others CONTROL, as llama.cpp treats them."""
    registry = Registry.open(tmp_path / "models", create=True)
    manifest = import_files(registry, [gguf_file("ggml-vocab-phi-3.gguf")], name="phi-3", provenance={"kind": "imported"})
    assert (manifest.unk_token, manifest.bos_token, manifest.eos_token) == ("<unk>", "<s>", "<|endoftext|>")
    encoding = registry.get_encoding("phi-3")
    mismatches = [(text[:60], want[:20]) for text, want in llama_vectors("phi-3") if encoding.encode_ordinary(text) != want]
    assert mismatches == []
    import sentencepiece

    theirs = sentencepiece.SentencePieceProcessor(model_proto=(tmp_path / "models" / "phi-3" / "1" / manifest.payload.path).read_bytes())
    for text in ("[PAD32011] <unk> <|user|>", "Hello\n\n world"):
        assert encoding.encode_ordinary(text) == theirs.encode(text)


def test_gguf_llama_import_records_what_the_file_names(tmp_path):
    registry = Registry.open(tmp_path / "models", create=True)
    path = gguf_file("ggml-vocab-llama-spm.gguf")
    manifest = import_files(registry, [path], name="llama2", provenance={"kind": "imported"})
    assert (manifest.payload_format, manifest.payload.compression, manifest.payload.path) == (
        "sentencepiece_model", "none", "tokenizer.model")
    assert (manifest.family, manifest.normalizer, manifest.bos_token, manifest.eos_token) == (
        "sentencepiece-bpe", "identity", "<s>", "</s>")
    import sentencepiece

    theirs = sentencepiece.SentencePieceProcessor(model_proto=imported_llama().payload)
    assert (manifest.unk_token, manifest.pad_token) == (
        theirs.id_to_piece(theirs.unk_id()), theirs.id_to_piece(theirs.pad_id()) if theirs.pad_id() >= 0 else None)
    assert manifest.provenance.settings == {"format": "gguf", "tokenizer.ggml.model": "llama",
                                            "add_space_prefix": True, "byte_fallback": True}
    text, want = llama_vectors()[-2]
    assert registry.get_encoding("llama2").encode_ordinary(text) == want
    with pytest.raises(ChecksumMismatchError, match="GGUF file ggml-vocab-llama-spm.gguf"):
        import_files(registry, [path], name="other", expected_sha256="0" * 64, provenance={"kind": "imported"})


def test_gguf_of_another_tokenizer_type_is_refused_by_name(tmp_path):
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.model 'bert' is not supported"):
        read_gguf_tokenizer(bert_gguf(tmp_path))


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(ModelFormatError, match="GGUF version 0"):
        read_gguf_tokenizer(path)


def test_a_unigram_model_loads_from_the_registry(tmp_path):
    registry = Registry.open(tmp_path / "models", create=True)
    registry.publish("kyoto", payload=model_bytes("kyoto_unigram"), payload_format="sentencepiece_model",
                     provenance={"kind": "imported"})
    encoding = Registry.open(tmp_path / "models").get_encoding("kyoto")
    text = "吾輩は猫である。名前はまだ無い。"
    assert encoding.algorithm == "sentencepiece-unigram"
    assert encoding.encode(text) == oracle("kyoto_unigram").encode(text)


def test_a_corrupted_payload_is_refused(tmp_path):
    registry = Registry.open(tmp_path / "models", create=True)
    registry.publish("m", payload=model_bytes("nmt_nfkc"), payload_format="sentencepiece_model", provenance={"kind": "imported"})
    payload = tmp_path / "models" / "m" / "1" / "tokenizer.model"
    data = bytearray(payload.read_bytes())
    data[100] ^= 1
    payload.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        Registry.open(tmp_path / "models").load("m")
