"""A long SentencePiece encode gives up midway once its call's deadline passes or its caller goes (issue 13).

A crafted Unigram vocabulary of 256 nested pieces costs ~1.7 s of CPU a MB of "aaa..." (bounded by the piece
length, see docs/decisions.md); before, an 8 MB request ran its ~13 s to the end after the client's deadline
had passed or the client had gone. The native core now checks the call's stop (tokend.engine.call_stop) every
4 KB of text and the service answers DeadlineExpired / CallCancelled naming the item.
"""

from __future__ import annotations

import threading
import time

import pytest

from tokend.registry import Registry
from tokend.registry.importing import import_files
from tokend.service import Limits, ServedModels, TokenizerService
from tokend.service.errors import CallCancelled, DeadlineExpired
from tokend.service.special_policy import SpecialTokenPolicy

from tests.engine.sentencepiece.test_model_file import _nested_unigram

TEXT = SpecialTokenPolicy.from_arguments((), (), allowed_field="allowed", disallowed_field="disallowed")
LONG = "a" * 2_000_000  # ~3 s of CPU with the nested model, far past the calls' deadlines below


class _Call:
    """A call with a deadline ``seconds`` from now; ``add_callback`` as grpc's (run when the call ends)."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.active = True
        self.callbacks: list = []

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def is_active(self) -> bool:
        return self.active

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True

    def cancel(self) -> None:
        self.active = False
        for callback in self.callbacks:
            callback()


def nested_models(directory) -> ServedModels:
    """A registry in ``directory`` serving the nested Unigram model as "nested"."""
    model = directory / "nested.model"
    model.write_bytes(_nested_unigram(256))
    registry = Registry.open(directory / "models", create=True)
    import_files(registry, [model], name="nested", provenance={"kind": "imported"})
    return ServedModels(registry)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return TokenizerService(nested_models(tmp_path_factory.mktemp("call-stop")), Limits(max_request_bytes=16 << 20))


@pytest.mark.parametrize("operation", ["count", "encode"])
def test_a_long_sentencepiece_item_stops_at_the_calls_deadline(service, operation):
    started = time.process_time()
    with pytest.raises(DeadlineExpired, match=r"while encoding inputs\[1\]"):
        getattr(service, operation)("nested", ["a b", LONG], special=TEXT, call=_Call(0.3))
    assert time.process_time() - started < 1.5  # generous: the whole item is ~3 s; it stops within ~6 ms of 0.3 s


def test_a_long_sentencepiece_item_stops_when_the_caller_goes(service):
    call = _Call(None)
    threading.Timer(0.3, call.cancel).start()
    with pytest.raises(CallCancelled, match=r"inputs\[0\]"):
        service.count("nested", [LONG], special=TEXT, call=call)


def test_a_call_with_time_left_gets_the_reference_answer(service):
    import sentencepiece

    reference = sentencepiece.SentencePieceProcessor(model_proto=_nested_unigram(256))
    text = "a" * 5000 + " banana"
    assert service.encode("nested", [text], special=TEXT, call=_Call(60.0)).ids[0] == reference.encode(text)
