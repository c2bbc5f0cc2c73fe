"""The SentencePiece core gives up midway under a call stop (tokend.engine.call_stop): its deadline passed or it
was cancelled. Checked every 4 KB of text in the normalizer, the Unigram Viterbi and the BPE scan, so each of
the crafted models below (256 steps a byte of "aaa...") stops within milliseconds instead of running seconds."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.engine.call_stop import CallStop, CallStopped, stop_at
from tokend.engine.sentencepiece import SentencePieceEncoding

from tests.engine.sentencepiece.test_model_file import (
    _chain_charsmap,
    _long_user_defined_piece,
    _nested_unigram,
    _with_charsmap,
)

TEXT = "a" * 1_000_000  # each model below takes ~1-2 s of CPU for it


def _crafted(kind: str) -> SentencePieceEncoding:
    if kind == "unigram":
        return SentencePieceEncoding.from_model_file("nested", _nested_unigram(256))
    if kind.startswith("user-defined"):  # "+unused": whole sentences merged at once (encode_sentence)
        return SentencePieceEncoding.from_model_file(kind, _long_user_defined_piece(unused_merges="unused" in kind))
    return _with_charsmap(_chain_charsmap(257))


@pytest.fixture(scope="module", params=["unigram", "user-defined", "user-defined+unused", "charsmap"])
def crafted(request):
    return _crafted(request.param)


@pytest.mark.parametrize("method", ["count", "encode", "encode_bytes"])
def test_a_passed_deadline_stops_the_encode_midway(crafted, method):
    call = (lambda: crafted.encode_bytes(TEXT.encode())) if method == "encode_bytes" else (
        lambda: getattr(crafted, method)(TEXT, disallowed_special=()))
    started = time.process_time()
    with pytest.raises(CallStopped), stop_at(CallStop(deadline=time.monotonic() + 0.05)):
        call()
    assert time.process_time() - started < 0.8  # generous: the whole text is ~1-2 s


def test_a_cancel_from_another_thread_stops_the_encode(crafted):
    stop = CallStop()
    threading.Timer(0.05, stop.cancel).start()
    with pytest.raises(CallStopped), stop_at(stop):
        crafted.count(TEXT, disallowed_special=())


def test_without_a_stop_or_in_time_the_answer_is_whole(crafted):
    text = "a" * 5000 + " b"
    expected = crafted.encode(text, disallowed_special=())
    with stop_at(CallStop(deadline=time.monotonic() + 60)):
        assert crafted.encode(text, disallowed_special=()) == expected
    assert crafted.count(text, disallowed_special=()) == len(expected)
