"""The scope every text operation runs in (``TokenizerService._admitted``): a large request's reservation is held
until the scope ends (or, inside a call record, until the record's end), the call's stop and the shared regex time
are set inside it and reset after, and an engine call that gave up midway (CallStopped) is answered as the call's
deadline or cancellation, whatever ended the block."""

from __future__ import annotations

import pytest

from tokend.engine.call_stop import CURRENT_STOP, CallStopped
from tokend.engine.regex_splitter import _SHARED
from tokend.service import Limits, TokenizerService, recording
from tokend.service.admission import WorkAdmission
from tokend.service.errors import CallCancelled, DeadlineExpired

LARGE = 1 << 20


class _Call:
    def __init__(self, remaining: float | None, active: bool = True) -> None:
        self.remaining, self.active, self.callbacks = remaining, active, []

    def time_remaining(self) -> float | None:
        return self.remaining

    def is_active(self) -> bool:
        return self.active

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True


def _service() -> tuple[TokenizerService, WorkAdmission]:
    admission = WorkAdmission(64 << 20, small_bytes=1024)
    return TokenizerService(models=None, limits=Limits(), admission=admission), admission  # type: ignore[arg-type]


def test_inside_the_scope_the_stop_and_regex_time_are_set_and_the_reservation_held_then_all_given_back():
    service, admission = _service()
    call = _Call(remaining=30.0)
    with service._admitted(LARGE, call, regex_chars=7) as regex_time:
        assert admission.held_bytes == LARGE
        assert _SHARED.get() is regex_time and regex_time.most_chars == 7
        deadline, flag = CURRENT_STOP.get()
        assert deadline > 0 and flag == bytearray(1)
        call.callbacks[0]()  # the client went away: grpc's callback
        assert CURRENT_STOP.get()[1] == bytearray(b"\x01")
    assert (admission.held_bytes, CURRENT_STOP.get(), _SHARED.get()) == (0, None, None)


def test_inside_a_call_record_the_reservation_is_given_back_at_the_records_end():
    service, admission = _service()
    with recording() as record:
        with service._admitted(LARGE, None):
            pass
        assert admission.held_bytes == LARGE and record.held_bytes == LARGE
    assert admission.held_bytes == 0


@pytest.mark.parametrize(
    ("call", "error"), [(_Call(remaining=-1.0, active=False), DeadlineExpired), (_Call(remaining=30.0, active=False), CallCancelled)]
)
def test_an_engine_call_stopped_midway_is_answered_as_the_calls_end_and_everything_given_back(call, error):
    service, admission = _service()
    with pytest.raises(error) as raised:
        with service._admitted(LARGE, call):
            raise CallStopped()
    assert raised.value.__suppress_context__
    assert (admission.held_bytes, CURRENT_STOP.get(), _SHARED.get()) == (0, None, None)


def test_other_errors_pass_through_with_everything_given_back():
    service, admission = _service()
    with pytest.raises(KeyError):
        with service._admitted(LARGE, _Call(remaining=None)):
            raise KeyError("x")
    assert (admission.held_bytes, CURRENT_STOP.get(), _SHARED.get()) == (0, None, None)
