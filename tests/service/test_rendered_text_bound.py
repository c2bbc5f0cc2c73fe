"""A chat's working memory is reserved on its counted bytes; a chat template that renders a message's content many
times (a loop over it) made the text it encodes many times that: 160 KB of content rendered 100 times took +363 MiB
against 5 MiB reserved, 1 MB rendered 10 times +228 against 32 (Unigram, count_chat; docs/decisions.md,
estimates24). The rendered text may now be at most twice the conversation's counted bytes + 64 KiB; past it the
conversation is refused before it is encoded (RESOURCE_EXHAUSTED, ``chat_template_max_chars``). A template that
renders its content twice is answered, with sentencepiece's count of the text jinja2 renders. A model whose merge
follows the pieces (SentencePiece BPE) may render twelve times the bytes: tools rendered with ``tojson(indent=4)``
grow with their nesting, and twice refused real tool catalogues. In-process service over a real registry."""

from __future__ import annotations

import jinja2
import pytest

from tests.engine.sentencepiece.models import model_bytes, oracle
from tokend.registry import Registry, chat_format_from_template
from tokend.service import ChatConversation, Limits, ServedModels, TokenizerService, recording
from tokend.service.admission import WorkAdmission
from tokend.service.errors import ErrorKind, describe

REPEATING = "{% for m in messages %}{% for i in range(10) %}{{ m.content }}{% endfor %}\n{% endfor %}"
REPEATING_20 = REPEATING.replace("range(10)", "range(20)")
TWICE = "{% for m in messages %}[{{ m.role }}] {{ m.content }} / again: {{ m.content }}\n{% endfor %}"
ENGLISH = "The quick brown fox jumps over the lazy dog, and then some more words follow. "


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    registry = Registry.open(tmp_path_factory.mktemp("rendered") / "models", create=True)
    for name, model, template in (
        ("repeating", "unigram", REPEATING), ("twice", "unigram", TWICE),
        ("pieces-repeating", "botchan_bpe", REPEATING), ("pieces-repeating-20", "botchan_bpe", REPEATING_20),
    ):
        registry.publish(name, payload=model_bytes(model), payload_format="sentencepiece_model",
                         provenance={"kind": "imported"}, chat_format=chat_format_from_template(template))
    return TokenizerService(ServedModels(registry), Limits(), admission=WorkAdmission(1 << 30))


@pytest.mark.parametrize("operation", ["count_chat", "encode_chat"])
def test_a_template_that_repeats_the_content_is_refused_before_encoding(service, operation):
    conversation = ChatConversation([{"role": "user", "content": ENGLISH * 2_000}])  # 156 KB, 1.56 MB rendered
    with pytest.raises(Exception) as raised, recording():
        getattr(service, operation)("repeating", [conversation])
    failure = describe(raised.value)
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.limit_name == "chat_template_max_chars", failure
    assert failure.field == "conversations[0]"
    assert "rendered 1,560,000 bytes of text" in str(raised.value)


def test_a_short_conversation_may_render_past_twice_its_bytes_within_the_template_allowance(service):
    conversation = ChatConversation([{"role": "user", "content": ENGLISH * 10}])  # 780 bytes, 7.8 KB rendered
    with recording():
        assert service.count_chat("repeating", [conversation]).total == len(
            oracle("unigram").encode(jinja2.Template(REPEATING).render(messages=conversation.messages)))


@pytest.mark.parametrize("operation", ["count_chat", "encode_chat"])
def test_a_template_that_renders_the_content_twice_is_answered(service, operation):
    messages = [{"role": "user", "content": ENGLISH * 4_000}, {"role": "assistant", "content": "Fine. " * 1_000}]
    rendered = jinja2.Template(TWICE).render(messages=messages)  # 636 KB: twice the content, and the template's text
    with recording():
        result = getattr(service, operation)("twice", [ChatConversation(messages)])
    expected = oracle("unigram").encode(rendered)
    if operation == "count_chat":
        assert result.total == len(expected)
    else:
        assert result.results[0].ids == expected


@pytest.mark.parametrize("operation", ["count_chat", "encode_chat"])
def test_a_model_merging_pieces_may_render_ten_times_its_bytes(service, operation):
    conversation = ChatConversation([{"role": "user", "content": ENGLISH * 2_000}])  # 156 KB, 1.56 MB rendered
    expected = oracle("botchan_bpe").encode(jinja2.Template(REPEATING).render(messages=conversation.messages))
    with recording():
        result = getattr(service, operation)("pieces-repeating", [conversation])
    if operation == "count_chat":
        assert result.total == len(expected)
    else:
        assert result.results[0].ids == expected


def test_a_model_merging_pieces_is_refused_past_twelve_times(service):
    conversation = ChatConversation([{"role": "user", "content": ENGLISH * 2_000}])  # 3.12 MB rendered
    with pytest.raises(Exception) as raised, recording():
        service.count_chat("pieces-repeating-20", [conversation])
    failure = describe(raised.value)
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.limit_name == "chat_template_max_chars", failure
    assert "rendered 3,120,000 bytes of text" in str(raised.value)
