"""The pieces every front-end's requests go through: special-token policy translation (the message codec
of tokend_api), the service layer's batch loop with deadline and cancellation checks, and its request
limits (no server needed)."""

from __future__ import annotations

import pytest

from tokend_api.policy_message import PolicyMessageError, from_message
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.errors import DisallowedSpecialTokenError
from tokend.service.batch import run_batch
from tokend.service.errors import BatchItemError, CallCancelled, DeadlineExpired, RequestLimitExceeded
from tokend.service.limits import Limits, input_bytes

Mode = pb.SpecialTokenSet.Mode


@pytest.mark.parametrize(
    "allowed,disallowed,expected",
    [
        (None, None, (set(), "all")),  # tiktoken's defaults
        (Mode.MODE_NONE, Mode.MODE_NONE, (set(), frozenset())),
        (Mode.MODE_ALL, Mode.MODE_ALL, ("all", "all")),
        (Mode.MODE_ALL, None, ("all", "all")),
        (None, Mode.MODE_NONE, (set(), frozenset())),
    ],
)
def test_policy_modes(allowed, disallowed, expected):
    policy = pb.SpecialTokenPolicy()
    if allowed is not None:
        policy.allowed.mode = allowed
    if disallowed is not None:
        policy.disallowed.mode = disallowed
    assert from_message(policy) == expected


def test_listed_tokens_pass_through():
    policy = pb.SpecialTokenPolicy(
        allowed=pb.SpecialTokenSet(mode=Mode.MODE_LISTED, tokens=["<|endoftext|>"]),
        disallowed=pb.SpecialTokenSet(mode=Mode.MODE_LISTED, tokens=["<|fim_prefix|>", "<|fim_suffix|>"]),
    )
    assert from_message(policy) == ({"<|endoftext|>"}, {"<|fim_prefix|>", "<|fim_suffix|>"})


def test_tokens_need_listed_mode():
    policy = pb.SpecialTokenPolicy(disallowed=pb.SpecialTokenSet(mode=Mode.MODE_ALL, tokens=["<|endoftext|>"]))
    with pytest.raises(PolicyMessageError) as info:
        from_message(policy)
    assert info.value.field == "special_tokens.disallowed.tokens"


class FakeCall:
    """time_remaining() answers from a list, one value per check."""

    def __init__(self, remaining, active=True):
        self.remaining = list(remaining)
        self.active = active
        self.checks = 0

    def time_remaining(self):
        self.checks += 1
        return self.remaining.pop(0) if self.remaining else None

    def is_active(self):
        return self.active


def test_batch_stops_when_the_deadline_has_passed():
    done = []
    with pytest.raises(DeadlineExpired) as info:
        run_batch(["a", "b", "c", "d"], done.append, call=FakeCall([5.0, 1.0, 0.0, 3.0]))
    assert done == ["a", "b"]  # the third item was never started
    assert (info.value.completed, info.value.total) == (2, 4)


def test_batch_stops_when_the_client_cancelled():
    done = []
    with pytest.raises(CallCancelled):
        run_batch(["a", "b"], done.append, call=FakeCall([], active=False))
    assert done == []


def test_batch_without_deadline_runs_everything():
    call = FakeCall([None, None, None])
    assert run_batch([1, 2, 3], lambda x: x * 2, call=call) == [2, 4, 6]
    assert call.checks == 3


def test_batch_names_the_failing_item():
    def encode(text):
        if "<|endoftext|>" in text:
            raise DisallowedSpecialTokenError("<|endoftext|>", text.index("<"))
        return len(text)

    with pytest.raises(BatchItemError) as info:
        run_batch(["ok", "fine", "x<|endoftext|>"], encode, call=None)
    assert (info.value.field, info.value.index) == ("inputs[2]", 2)
    assert info.value.cause.offset == 1


def test_batch_does_not_hide_bugs():
    with pytest.raises(ZeroDivisionError):
        run_batch([1], lambda x: x / 0, call=None)


def test_limits_and_input_bytes():
    inputs = ["héllo", b"\xff\xfe"]
    assert input_bytes(inputs) == 6 + 2
    limits = Limits(max_batch_items=2, max_request_bytes=8)
    limits.check_request(items=2, input_bytes=8)
    with pytest.raises(RequestLimitExceeded, match=r"limit of 2 \(max_batch_items\)"):
        limits.check_request(items=3, input_bytes=0)
    with pytest.raises(RequestLimitExceeded, match=r"9 input bytes, over the limit of 8 \(max_request_bytes\)"):
        limits.check_request(items=1, input_bytes=9)
