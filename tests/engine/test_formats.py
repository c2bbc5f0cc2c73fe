"""File formats: tiktoken rank files (with SHA-256), minbpe .model, merges <-> ranks."""

from __future__ import annotations

import hashlib

import pytest

from tokend.engine import (
    CL100K_BASE,
    MinbpeModel,
    dump_minbpe_model,
    dump_tiktoken_ranks,
    load_minbpe_model,
    load_tiktoken_ranks,
    merges_to_ranks,
    ranks_to_merges,
    train,
)
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tests.engine._encodings import rank_file_bytes


def test_rank_file_hashes_are_the_published_ones():
    # The truncated hashes (223921b7…b2a7, 446a9538…1a2d) and tiktoken's full ones.
    assert hashlib.sha256(rank_file_bytes("cl100k_base")).hexdigest() == CL100K_BASE.rank_file_sha256
    assert CL100K_BASE.rank_file_sha256.startswith("223921b7") and CL100K_BASE.rank_file_sha256.endswith("b2a7")


def test_load_real_rank_file_and_dump_is_byte_identical(oracle, encoding_name):
    data = rank_file_bytes(encoding_name)
    ranks = load_tiktoken_ranks(data)
    assert ranks == oracle._mergeable_ranks
    assert dump_tiktoken_ranks(ranks) == data


def test_checksum_mismatch_is_clear():
    data = dump_tiktoken_ranks({bytes([i]): i for i in range(256)})
    with pytest.raises(ChecksumMismatchError) as info:
        load_tiktoken_ranks(data + b"\n", expected_sha256=hashlib.sha256(data).hexdigest(), what="tiny ranks")
    error = info.value
    assert error.what == "tiny ranks" and error.expected == hashlib.sha256(data).hexdigest()
    assert error.actual == hashlib.sha256(data + b"\n").hexdigest()
    assert "tiny ranks" in str(error) and isinstance(error, ValueError)
    assert load_tiktoken_ranks(data, expected_sha256=hashlib.sha256(data).hexdigest().upper())[b"a"] == 97


@pytest.mark.parametrize(
    "data, fragment",
    [(b"YQ== 0\nnot-base64!! 1\n", "line 2"), (b"YQ==\n", "line 1"), (b"YQ== x\n", "line 1"), (b"YQ== 0\nYQ== 1\n", "more than once")],
)
def test_malformed_rank_file_names_the_line(data, fragment):
    with pytest.raises(ModelFormatError, match=fragment):
        load_tiktoken_ranks(data)


MINBPE_MODEL = "minbpe v1\n\n1\n<|endoftext|> 259\n97 97\n256 97\n257 98\n"


def test_minbpe_model_round_trip():
    model = load_minbpe_model(MINBPE_MODEL)
    assert model == MinbpeModel(pattern="", special_tokens={"<|endoftext|>": 259}, merges={(97, 97): 256, (256, 97): 257, (257, 98): 258})
    assert dump_minbpe_model(model) == MINBPE_MODEL


def test_trained_model_survives_both_formats(tmp_path):
    result = train(["hello world, hello tokens! " * 20, "unrelated text 123"], 300, special_tokens=["<|end|>"])
    text = dump_minbpe_model(MinbpeModel(pattern=result.encoding.pattern, special_tokens=dict(result.encoding.special_tokens), merges=result.merges))
    path = tmp_path / "toy.model"
    path.write_text(text, encoding="utf-8")
    loaded = load_minbpe_model(path.read_text(encoding="utf-8"))
    assert loaded.merges == result.merges and loaded.special_tokens == {"<|end|>": 300}
    ranks = merges_to_ranks(loaded.merges)
    assert ranks == dict(result.encoding.mergeable_ranks)
    assert load_tiktoken_ranks(dump_tiktoken_ranks(ranks)) == ranks
    assert ranks_to_merges(ranks) == result.merges


@pytest.mark.parametrize(
    "text, fragment",
    [("minbpe v2\n\n0\n", "expected 'minbpe v1'"), ("minbpe v1\n\nx\n", "line 3"), ("minbpe v1\n\n0\n97 300\n", "not defined"), ("minbpe v1\n\n0\n1 2 3\n", "line 4"),
     ("minbpe v1\n\n2\n<s> 300\n<s> 301\n", "line 5: special token '<s>' is given twice")],
)
def test_malformed_minbpe_model(text, fragment):
    with pytest.raises(ModelFormatError, match=fragment):
        load_minbpe_model(text)


def test_ranks_to_merges_of_cl100k_prefix_round_trips(oracle, encoding_name):
    # The first 2,000 ranks of a real vocabulary (bytes are permuted there, so pass the base explicitly).
    ranks = {token: rank for token, rank in oracle._mergeable_ranks.items() if rank < 2000}
    merges = ranks_to_merges(ranks)
    assert len(merges) == len(ranks) - 256
    base = {rank: token for token, rank in ranks.items() if len(token) == 1}
    assert merges_to_ranks(merges, base=base) == ranks


def test_ranks_that_are_not_bpe_are_rejected():
    ranks = {bytes([i]): i for i in range(256)} | {b"abc": 256}
    with pytest.raises(ModelFormatError, match="abc"):
        ranks_to_merges(ranks)
