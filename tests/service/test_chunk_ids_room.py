"""A Chunk call holds room in its worker's work budget for the ids its chunks repeat, as it makes them: an
overlap multiplies the ids past anything its input's estimate sees (8 KB of one-byte tokens in chunks of 4,000
overlapping by 3,999: ~16 M ids, ~130 MB of lists, for a request that reserved nothing; 32 at once took a worker
to 2.2 GB). Past the budget the call is refused as an answer that finds no room is (ServiceUnavailable: retry),
and the room goes back when the call ends."""

from __future__ import annotations

import pytest

from tokend.registry import Registry
from tokend.service import Limits, ServedModels, TokenizerService, WorkAdmission
from tokend.service.call_record import recording
from tokend.service.chunk_ids_room import CHUNK_BYTES, CHUNK_ID_BYTES, ROOM_STEP_BYTES
from tokend.service.errors import ServiceUnavailable

ONE_BYTE_TOKENS = "\x01" * 8000  # 8,000 cl100k_base tokens of one byte each


@pytest.fixture(scope="module")
def models():
    return ServedModels(Registry.open())


def _service(models, budget: int) -> tuple[TokenizerService, WorkAdmission, list[int]]:
    admission = WorkAdmission(budget, answer_room_bytes=None)
    held: list[int] = []  # admission.held_bytes after each hold
    hold = admission.hold

    def counted_hold(size, **options):
        release = hold(size, **options)
        held.append(admission.held_bytes)
        return release

    admission.hold = counted_hold  # type: ignore[method-assign]
    return TokenizerService(models, Limits(max_response_bytes=64 << 20), admission=admission), admission, held


def test_a_chunking_whose_ids_pass_the_work_budget_is_refused_with_everything_given_back(models):
    service, admission, held = _service(models, 64 << 20)
    with pytest.raises(ServiceUnavailable, match="max_work_bytes: 64 MiB"):
        service.chunk("cl100k_base", [ONE_BYTE_TOKENS], 4000, overlap=3999, prefer="token")  # 16 M ids: 128 MB
    assert held and max(held) <= 64 << 20  # it stopped at the budget, not at the answer limit
    assert admission.held_bytes == 0


def test_the_room_held_follows_the_ids_and_is_given_back_at_the_calls_end(models):
    service, admission, held = _service(models, 1 << 30)
    plain = TokenizerService(models, Limits(max_response_bytes=64 << 20))
    with recording() as record:
        chunks = service.chunk("cl100k_base", [ONE_BYTE_TOKENS], 2000, overlap=1999, prefer="token").results[0]
        counted = sum(CHUNK_ID_BYTES * len(chunk.ids) + CHUNK_BYTES for chunk in chunks)  # 96 MB for 12 M ids
        free = 12 * len(ONE_BYTE_TOKENS) + (4 << 20)  # the input's own ids and a small request's allowance
        steps = -(-(counted - free) // ROOM_STEP_BYTES)
        assert admission.held_bytes == record.held_bytes == steps * ROOM_STEP_BYTES > 64 << 20  # until the answer goes
    assert admission.held_bytes == 0
    assert chunks == plain.chunk("cl100k_base", [ONE_BYTE_TOKENS], 2000, overlap=1999, prefer="token").results[0]


@pytest.mark.parametrize("overlap", [0, 100])
def test_chunkings_whose_ids_the_input_covers_hold_nothing(models, overlap):
    service, admission, held = _service(models, 64 << 20)
    text = "Some words of an ordinary document, and a sentence more.\n\n" * 20000  # 1.2 MB, ~260 K tokens
    chunks = service.chunk("cl100k_base", [text], 512, overlap=overlap).results[0]
    assert len(chunks) > 400 and held == [] and admission.held_bytes == 0
