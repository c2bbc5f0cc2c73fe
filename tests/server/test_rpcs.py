"""Every RPC of tokend.v1.Tokenizer against a real server, with tiktoken as the oracle.

The ids a server returns must be tiktoken's, for every special-token policy combination and a varied
corpus (plain text, Unicode, whitespace runs, code, numbers, special tokens in the middle of text).
"""

from __future__ import annotations

import hashlib
import itertools

import grpc
import pytest
import tiktoken

from tokend_api.v1 import tokenizer_pb2 as pb

from .conftest import rpc_error

Mode = pb.SpecialTokenSet.Mode

EOT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"

# Hand-picked to exercise the pre-split pattern and the special-token scan.
CORPUS = [
    "hello world",
    "",
    " ",
    "\n\n\n   \t  trailing   ",
    "Héllo wörld — naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어",
    "emoji 👩‍👩‍👧‍👦 🇺🇳 and combining e\u0301",
    "def f(x):\n    return x ** 2  # squares\n",
    "1234567890 3.14159 1e-10 0x1F 1,000,000",
    "I'm you're they'll we've it's DON'T",
    "a" * 300,
    "The quick brown fox jumps over the lazy dog. " * 20,
    f"before {EOT} after",
    f"{FIM_PREFIX}x{EOT}",
    f"{EOT}{EOT}",
    "<|endoftext|",  # not a special token: one character short
    f"text with <|endofprompt|> and {FIM_PREFIX} inside",
]

SPECIAL_SETS = {
    "unset": None,
    "none": pb.SpecialTokenSet(mode=Mode.MODE_NONE),
    "all": pb.SpecialTokenSet(mode=Mode.MODE_ALL),
    "listed_eot": pb.SpecialTokenSet(mode=Mode.MODE_LISTED, tokens=[EOT]),
    "listed_empty": pb.SpecialTokenSet(mode=Mode.MODE_LISTED),
    "listed_fim": pb.SpecialTokenSet(mode=Mode.MODE_LISTED, tokens=[FIM_PREFIX]),
}


def _tiktoken_argument(name: str, *, allowed: bool):
    """The tiktoken argument the policy field means (tiktoken's own defaults for unset)."""
    return {
        "unset": set() if allowed else "all",
        "none": set() if allowed else (),
        "all": "all",
        "listed_eot": {EOT},
        "listed_empty": set(),
        "listed_fim": {FIM_PREFIX},
    }[name]


def _policy(allowed: str, disallowed: str) -> pb.SpecialTokenPolicy:
    policy = pb.SpecialTokenPolicy()
    if SPECIAL_SETS[allowed] is not None:
        policy.allowed.CopyFrom(SPECIAL_SETS[allowed])
    if SPECIAL_SETS[disallowed] is not None:
        policy.disallowed.CopyFrom(SPECIAL_SETS[disallowed])
    return policy


def _texts(*strings: str) -> list[pb.Input]:
    return [pb.Input(text=s) for s in strings]


def _corpus() -> list[str]:
    """Our hand-picked strings plus the shared corpus (tests/corpus.py: English, code, ~200 languages, edge cases)."""
    from corpus import corpus_texts

    return CORPUS + corpus_texts(limit_bytes=40_000)


def _batches(texts: list[str], *, max_items: int = 48, max_bytes: int = 150_000):
    """Split into requests under the shared server's limits (64 items, 200000 bytes)."""
    batch, size = [], 0
    for text in texts:
        length = len(text.encode("utf-8"))
        if batch and (len(batch) == max_items or size + length > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(text)
        size += length
    if batch:
        yield batch


@pytest.fixture(scope="module")
def cl100k():
    return tiktoken.get_encoding("cl100k_base")


@pytest.mark.parametrize("model", ["cl100k_base", "o200k_base"])
def test_encode_count_decode_match_tiktoken_on_corpus(stub, model):
    oracle = tiktoken.get_encoding(model)
    policy = pb.SpecialTokenPolicy(disallowed=pb.SpecialTokenSet(mode=Mode.MODE_NONE))
    texts = _corpus()
    assert len(texts) > 50
    for batch in _batches(texts):
        expected = [oracle.encode(t, disallowed_special=()) for t in batch]
        response = stub.Encode(pb.EncodeRequest(model=model, inputs=_texts(*batch), special_tokens=policy), timeout=60)
        assert response.model.name == model and response.model.version == 1
        assert [list(r.ids) for r in response.results] == expected
        assert response.total_tokens == sum(len(ids) for ids in expected)
        counts = stub.CountTokens(pb.CountTokensRequest(model=model, inputs=_texts(*batch), special_tokens=policy), timeout=60)
        assert list(counts.counts) == [len(ids) for ids in expected]
        decoded = stub.Decode(pb.DecodeRequest(model=model, inputs=[pb.TokenIds(ids=ids) for ids in expected]), timeout=60)
        assert [r.text for r in decoded.results] == [oracle.decode(ids) for ids in expected]


@pytest.mark.parametrize("allowed,disallowed", list(itertools.product(SPECIAL_SETS, SPECIAL_SETS)))
def test_every_special_token_combination_matches_tiktoken(stub, cl100k, allowed, disallowed):
    allowed_arg = _tiktoken_argument(allowed, allowed=True)
    disallowed_arg = _tiktoken_argument(disallowed, allowed=False)
    policy = _policy(allowed, disallowed)
    from corpus import edge_cases

    ok_texts, expected, failing = [], [], []
    for text in CORPUS + edge_cases():
        try:
            expected.append(cl100k.encode(text, allowed_special=allowed_arg, disallowed_special=disallowed_arg))
            ok_texts.append(text)
        except ValueError as error:
            failing.append((text, str(error)))
    response = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=_texts(*ok_texts), special_tokens=policy), timeout=30)
    assert [list(r.ids) for r in response.results] == expected
    counts = stub.CountTokens(
        pb.CountTokensRequest(model="cl100k_base", inputs=_texts(*ok_texts), special_tokens=policy), timeout=30
    )
    assert list(counts.counts) == [len(ids) for ids in expected]
    assert counts.total == sum(len(ids) for ids in expected)
    for text, message in failing:
        error = rpc_error(
            stub.Encode, pb.EncodeRequest(model="cl100k_base", inputs=_texts("fine", text), special_tokens=policy), timeout=10
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("inputs[1]: disallowed special token ")
        # tiktoken names the token it tripped over; the server must name the same one.
        named = message.split("disallowed special token ")[1].split("'")[1]
        assert repr(named) in error.details()


def test_bytes_inputs_are_ordinary_text(stub, cl100k):
    data = [b"\xff\xfe hello", EOT.encode(), "héllo".encode("utf-8")[:2]]
    response = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(data=d) for d in data]), timeout=10)
    assert [list(r.ids) for r in response.results] == [cl100k._encode_bytes(d) for d in data]
    counts = stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(data=d) for d in data]), timeout=10)
    assert list(counts.counts) == [len(cl100k._encode_bytes(d)) for d in data]


def test_decode_text_round_trips(stub, cl100k):
    texts = [t for t in CORPUS if t]
    ids = [cl100k.encode(t, allowed_special="all") for t in texts]
    response = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=i) for i in ids]), timeout=10)
    assert response.model.name == "cl100k_base" and response.model.version == 1
    assert [r.text for r in response.results] == texts


def test_decode_partial_utf8_replace_and_bytes(stub, cl100k):
    lone = cl100k.encode_single_token(b"\xe2")  # the first byte of a 3-byte UTF-8 sequence
    ids = [pb.TokenIds(ids=[lone]), pb.TokenIds(ids=cl100k.encode("ok") + [lone])]
    replaced = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=ids, errors=pb.DecodeRequest.ERRORS_REPLACE), timeout=10)
    assert [r.text for r in replaced.results] == ["\ufffd", "ok\ufffd"]
    default = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=ids), timeout=10)
    assert [r.text for r in default.results] == ["\ufffd", "ok\ufffd"]
    raw = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=ids, output=pb.DecodeRequest.OUTPUT_BYTES), timeout=10)
    assert [r.data for r in raw.results] == [b"\xe2", b"ok\xe2"]
    assert all(r.WhichOneof("content") == "data" for r in raw.results)


def test_decode_special_token_ids(stub):
    response = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[15339, 100257])]), timeout=10)
    assert response.results[0].text == "hello<|endoftext|>"  # 15339 = "hello" in cl100k_base (tiktoken)


def test_empty_batch(stub):
    response = stub.Encode(pb.EncodeRequest(model="cl100k_base"), timeout=10)
    assert list(response.results) == [] and response.total_tokens == 0
    assert response.model.version == 1


def test_list_models(stub):
    response = stub.ListModels(pb.ListModelsRequest(), timeout=10)
    models = {m.name: m for m in response.models}
    assert set(models) == {"cl100k_base", "o200k_base"}
    assert list(models["cl100k_base"].versions) == [1]
    assert models["cl100k_base"].latest_version == 1
    assert dict(models["cl100k_base"].aliases) == {"stable": 1}
    assert dict(models["o200k_base"].aliases) == {}


@pytest.mark.parametrize("ref", ["cl100k_base", "cl100k_base@1", "cl100k_base@stable"])
def test_get_model(stub, registry_dir, cl100k, ref):
    details = stub.GetModel(pb.GetModelRequest(model=ref), timeout=10).details
    assert (details.model.name, details.model.version) == ("cl100k_base", 1)
    assert details.n_vocab == cl100k.n_vocab == 100277
    assert details.max_token_value == cl100k.max_token_value
    assert dict(details.special_tokens) == cl100k._special_tokens
    assert details.pattern == cl100k._pat_str
    assert details.payload_format == "tiktoken"
    manifest_bytes = (registry_dir / "cl100k_base" / "1" / "manifest.json").read_bytes()
    assert details.sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert details.HasField("eot_token") and details.eot_token == 100257
    assert list(details.aliases) == ["stable"]
    assert details.created_at.endswith("Z") and details.created_at[:2] == "20"
    assert details.algorithm == "byte_level_bpe"
    assert details.normalizer == ""  # tiktoken normalizes nothing
    # a rank file names no BOS/EOS/UNK/PAD (its end-of-text token is eot_token)
    assert not any(details.HasField(f"{role}_token") for role in ("bos", "eos", "unk", "pad"))


def test_get_model_o200k(stub):
    oracle = tiktoken.get_encoding("o200k_base")
    details = stub.GetModel(pb.GetModelRequest(model="o200k_base"), timeout=10).details
    assert details.n_vocab == oracle.n_vocab
    assert details.eot_token == oracle.eot_token
    assert list(details.aliases) == []


def test_every_response_names_its_worker(stub, shared_server):
    _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10)
    worker = dict(call.initial_metadata())["tokend-worker"]
    assert int(worker) in shared_server.worker_pids()
    error = rpc_error(stub.Encode, pb.EncodeRequest(model="nope", inputs=_texts("x")), timeout=10)
    assert dict(error.initial_metadata())["tokend-worker"] == worker
