"""A request on a SentencePiece Unigram model, or on a byte-level model with NFC, reserves its working memory on its
normalized text (which nmt_nfkc may make 13 times the input, NFC 3 times), measured only where that could make the
request large; SentencePiece BPE models and requests small at the growth's bound reserve as before. In-process
service over a real registry; `sentencepiece`'s trained models, Qwen 3's tokenizer.json."""

from __future__ import annotations

import json

import pytest

from support.tokenizer_json import qwen3_tokenizer_json
from tests.engine.sentencepiece.models import model_bytes, ours
from tokend.registry import Registry, chat_format_from_template
from tokend.registry.importing import import_files
from tokend.service import ChatConversation, Limits, ServedModels, TokenizerService, recording
from tokend.service.chat import chat_working_bytes, conversation_bytes
from tokend.service.admission import WorkAdmission, working_bytes
from tokend.service.errors import RequestLimitExceeded
from tokend.service.work_sizes import working_sizes

LIGATURE = "\ufdfa"  # 3 bytes; 39 once normalized by nmt_nfkc


# One xdist worker runs the whole file, so its module fixtures are built once, not once per worker:
# Qwen 3 imported and two SentencePiece models trained, ~5 s (docs/decisions.md, "The suite's time on CI, again").
pytestmark = pytest.mark.xdist_group("work-sizes")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    directory = tmp_path_factory.mktemp("work-sizes")
    registry = Registry.open(directory / "models", create=True)
    (directory / "tokenizer.json").write_text(json.dumps(qwen3_tokenizer_json()), encoding="utf-8")
    import_files(registry, [directory / "tokenizer.json"], name="qwen3", provenance={"kind": "imported", "command": "test"})
    for name in ("unigram", "nmt_nfkc"):
        registry.publish(name, payload=model_bytes(name), payload_format="sentencepiece_model",
                         provenance={"kind": "imported"},
                         chat_format=chat_format_from_template("{% for m in messages %}{{ m.content }}\n{% endfor %}"))
    return registry


def _held(registry, model: str, text: str, operation: str = "count", **limits) -> int:
    admission = WorkAdmission(1 << 30)
    service = TokenizerService(ServedModels(registry), Limits(**limits), admission=admission)
    with recording():
        getattr(service, operation)(model, [text])
        return admission.held_bytes


@pytest.mark.parametrize("operation", ["count", "encode"])
def test_a_unigram_request_reserves_on_its_normalized_text(registry, operation):
    text = LIGATURE * 50_000  # 150 KB: the input's estimate is small (3 MB), the normalized text's (39 MB) is not
    normalized = len(ours("unigram").normalize(text).encode())
    assert normalized > 12 * len(text.encode())
    held = _held(registry, "unigram", text, operation)
    assert working_bytes(operation, sizes=[normalized]) <= held <= working_bytes(operation, sizes=[normalized + 4096])


def test_an_nfc_request_reserves_on_its_normalized_text(registry):
    text = "\U0001d160" * 30_000  # 120 KB, one piece: small as it is (2.4 MB), 360 KB once NFC made it three times longer
    assert _held(registry, "qwen3", text) == working_bytes("count", sizes=[3 * len(text.encode())])
    assert _held(registry, "qwen3", "plain words " * 12_000) == 0  # 144 KB that NFC leaves alone: measured small, as before


def test_bpe_models_and_small_unigram_requests_reserve_as_before(registry):
    text = LIGATURE * 50_000
    assert _held(registry, "nmt_nfkc", text) == 0  # BPE: 150 KB of input is a small request
    assert _held(registry, "unigram", LIGATURE * 1_000) == 0  # small even at 16 times its input + 1 KB
    english = "a few plain words " * 50_000  # 900 KB: ~1.3 times once normalized
    held = _held(registry, "unigram", english)
    assert working_bytes("count", sizes=[len(english)]) < held < working_bytes("count", sizes=[2 * len(english)])


def test_the_normalized_text_is_measured_only_where_it_could_make_the_request_large():
    measured = []

    class Unigram:  # the engine's two hooks, recording what is measured
        def working_text_bound(self, size):
            return 16 * size + 1024

        def working_text_bytes(self, text):
            measured.append(text)
            return 2 * len(text)

    small, large = "x" * 100, "x" * 50_000
    assert working_sizes("count", Unigram(), [small], [100], small_bytes=4 << 20) == [16 * 100 + 1024]
    assert working_sizes("count", Unigram(), [large, small], [50_000, 100], small_bytes=4 << 20) == [100_000, 200]
    assert measured == [large, small]
    checked = []
    working_sizes("encode", Unigram(), [large], [50_000], small_bytes=4 << 20, check=checked.append)
    assert checked == [100_000]


def test_past_twice_the_request_limit_of_normalized_text_is_refused(registry):
    with pytest.raises(RequestLimitExceeded) as raised:
        _held(registry, "unigram", LIGATURE * 100_000, max_request_bytes=1 << 20)  # ~3.9 MB normalized
    assert raised.value.limit_name == "max_request_bytes" and raised.value.limit == 2 << 20


def test_a_chat_reserves_on_its_strings_as_the_model_normalizes_them(registry):
    text = LIGATURE * 50_000  # 150 KB of content: a small chat as counted, 1.95 MB once normalized
    conversation = ChatConversation([{"role": "user", "content": text}])
    admission = WorkAdmission(1 << 30)
    service = TokenizerService(ServedModels(registry), Limits(), admission=admission)
    with recording():
        service.count_chat("unigram", [conversation])
        held = admission.held_bytes
    normalized = len(ours("unigram").normalize(text).encode())
    assert chat_working_bytes("count_chat", [normalized]) <= held
    assert held <= chat_working_bytes("count_chat", [conversation_bytes(conversation) + normalized + 4096])


def test_raw_bytes_are_measured_as_the_byte_level_merge_gets_them(registry):
    """review23: a byte-level model's ``encode_bytes`` normalizes the valid UTF-8 prefix only, the rest is one raw
    piece; counted as a U+FFFD each (3 bytes), 0xFF data looked three times longer than anything the merge holds."""
    encoding = ServedModels(registry).load("qwen3").encoding
    note = "\U0001d160".encode()
    assert encoding.working_text_bytes(b"\xff" * 1000) == 1000
    assert encoding.working_text_bytes(note * 10 + b"\xff\xfe") == 3 * 4 * 10 + 2  # the prefix as NFC makes it
    assert encoding.working_text_bytes(note * 10) == encoding.working_text_bytes("\U0001d160" * 10) == 120
