"""What a chat encode holds per input byte stays within what the service reserves for it (`chat_working_bytes`),
for the worst shape: one token a byte ("\\x01"), on Tekken (mistral v3), cl100k ChatML, and a template that joins
two messages' text with no special token between them (the tokens shared out by byte offsets: segments.py's
`_split_by_offsets`, which held a bytes object a token: ~110 bytes an input byte against 37 reserved).
tracemalloc sees the Python objects (ids, token bytes, rendered text); the native core's own buffers are bounded
by the engine's tests."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format, chat_format_from_template
from tokend.service.chat import chat_working_bytes

SIZE = 1 << 20


def _peak(encoder: ChatEncoder, messages: list[dict]) -> tuple[int, list[int]]:
    encoder.encode_chat([{"role": "user", "content": "warm"}, {"role": "user", "content": "up"}])
    gc.collect()
    tracemalloc.start()
    try:
        ids = encoder.encode_chat(messages).ids
        return tracemalloc.get_traced_memory()[1], ids
    finally:
        tracemalloc.stop()


def _messages() -> list[dict]:
    return [{"role": "user", "content": "hi"}, {"role": "user", "content": "\x01" * SIZE}]


def _check(encoder: ChatEncoder, reference_ids: list[int]) -> None:
    messages = _messages()
    peak, ids = _peak(encoder, messages)
    assert ids == reference_ids
    assert len(ids) > SIZE  # one token a byte: the worst shape for the ids
    assert peak <= chat_working_bytes("encode_chat", [SIZE]), f"{peak / SIZE:.1f} bytes an input byte"


def test_a_template_joining_messages_holds_what_its_reservation_covers(cl100k_im):
    spec = chat_format_from_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    encoder = ChatEncoder(cl100k_im, build_chat_format(spec))
    result = encoder.encode_chat(_messages())
    assert result.message_spans == [(0, 1), (1, 1 + SIZE)]  # shared out by offsets: the split path
    _check(encoder, cl100k_im.encode_ordinary("hi" + "\x01" * SIZE))


def test_chatml_holds_what_its_reservation_covers(cl100k_im):
    encoder = ChatEncoder(cl100k_im, build_chat_format(builtin_chat_format("chatml")))
    rendered = encoder.encode_chat(_messages()).text
    _check(encoder, cl100k_im.encode(rendered, allowed_special="all"))


def test_tekken_holds_what_its_reservation_covers(mistral_encodings):
    tekken = mistral_encodings["tekken_240718.json"]
    encoder = ChatEncoder(tekken, build_chat_format(builtin_chat_format("mistral", version="v3")))
    ids = encoder.encode_chat(_messages()).ids
    _check(encoder, ids)  # exactness against mistral-common is tests/chat/test_mistral.py's


def test_split_texts_longer_than_a_block_share_their_tokens_by_first_byte(cl100k_im):
    """`_split_by_offsets` walks the token bytes a block at a time: splits in later blocks, and a token across a
    split, go to the message its first byte lies in (checked against the whole text's token bytes at once)."""
    from tokend.registry.chat.segments import SPLIT_BLOCK_TOKENS, _split_by_offsets

    text = "héllo wörld, \x01" * (SPLIT_BLOCK_TOKENS // 2)
    ids = cl100k_im.encode_ordinary(text)
    assert len(ids) > 2 * SPLIT_BLOCK_TOKENS
    splits = ((7, 1), (len(text) // 2 + 3, 2), (len(text) - 5, 3))
    starts, position = [], 0
    for token in cl100k_im.decode_tokens_bytes(ids):
        starts.append(position)
        position += len(token)
    byte_splits = [len(text[:offset].encode()) for offset, _ in splits]
    owners = [sum(start >= split for split in byte_splits) for start in starts]
    expected = [(owner, owners.count(owner)) for owner in sorted(set(owners))]
    assert _split_by_offsets(cl100k_im, text, 0, splits, ids) == expected
