"""The limits of one request: items, input bytes, and the size of the answer. Checked before the work they
bound, so an oversized request costs almost nothing.

- ``max_batch_items`` — inputs per request.
- ``max_request_bytes`` — input bytes per request: UTF-8 bytes of text, raw bytes, the listed special-token
  strings, and ``BYTES_PER_TOKEN_ID`` per token id to decode.
- ``max_chunks`` — chunks one Chunk / ChunkStream request may make, over all its inputs (a tiny budget
  over a big text would make millions).
- ``max_response_bytes`` — the answer, measured as it is produced and before it is built
  (``AnswerBudget``): the size of a compact binary answer (protobuf's: a token id is a varint of 1-4 bytes,
  decoded text its own bytes, each result some framing). A front-end sets it to what its transport can carry
  (the gRPC worker: ``max_message_bytes``), so every request that is accepted can also be answered.
- ``max_stream_answer_bytes`` — the whole answer of one ChunkStream, ``STREAM_ANSWER_MESSAGES`` answer limits
  (derived, not a setting): a stream is not one message, but its overlap multiplies what it makes and sends.

    >>> limits = Limits(max_batch_items=2, max_request_bytes=10)
    >>> limits.check_request(items=2, input_bytes=10)
    >>> limits.check_request(items=3, input_bytes=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tokend.service.errors.RequestLimitExceeded: request has 3 batch items, over the limit of 2 (max_batch_items); ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tokend_api import (
    BYTES_PER_TOKEN_ID,
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_BATCH_ITEMS,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    MAX_STREAM_ANSWER_BYTES,
    STREAM_ANSWER_MESSAGES,
)

from tokend.engine._native import varint_bytes
from tokend.service.errors import RequestLimitExceeded

__all__ = [
    "AnswerBudget",
    "Limits",
    "UNLIMITED",
    "BYTES_PER_TOKEN_ID",
    "answer_bytes",
    "id_bytes",
    "input_bytes",
    "item_sizes",
    "text_bytes",
]

# Framing around one result (field tags and lengths) and around the whole answer (model name, totals).
ANSWER_BYTES_PER_ITEM = 16
ANSWER_ENVELOPE_BYTES = 1024
_VARINT_STEPS = (127, 16383, 2097151, 268435455)  # the largest values of 1, 2, 3 and 4 bytes
# Sums over many ids go a slice at a time (~0.5 ms each): one C-level sum holds the GIL throughout, and the
# worker's other calls wait for it (id_bytes here, token_sizes.decoded_bytes).
SUM_SLICE_IDS = 1 << 14
# The text the engine works on (a SentencePiece Unigram model's or an NFC model's normalized text:
# ``working_text_bytes``) may be this many times ``max_request_bytes`` in all: real text stays well within it
# (English under nmt_nfkc: 1.3 times, its spaces become "▁"), and the largest request so admitted holds twice what
# the largest ordinary one does. A text of U+FDFA is 13 times under nmt_nfkc (8 MiB of it took a worker to
# 1,804 MiB, running alone), U+1D160 3 times under NFC.
WORKING_TEXT_FACTOR = 2


def text_bytes(text: str) -> int:
    """UTF-8 bytes of ``text`` (lone surrogates, which JSON can carry, count as 3 bytes each).

    >>> text_bytes("héllo")
    6
    """
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def input_bytes(items: Iterable[str | bytes]) -> int:
    """Bytes of a batch of inputs: UTF-8 bytes of text, length of raw bytes."""
    return sum(item_sizes(items))


def item_sizes(items: Iterable[str | bytes]) -> list[int]:
    """Bytes of each input: UTF-8 bytes of text, length of raw bytes."""
    return [len(item) if isinstance(item, (bytes, bytearray)) else text_bytes(item) for item in items]


def answer_bytes(*, items: int, data_bytes: int = 0) -> int:
    """An upper bound of an answer of ``items`` results holding ``data_bytes`` (text or bytes) in all."""
    return ANSWER_ENVELOPE_BYTES + items * ANSWER_BYTES_PER_ITEM + data_bytes


def id_bytes(ids: Sequence[int], *, stop_above: int | None = None, largest: int | None = None) -> int:
    """Bytes of ``ids`` as varints, exactly; with ``stop_above``, a lower bound over it as soon as one is found.

    A native uint32 buffer (``Encoding.encode_to_buffer``, the ids of a text encoded alone) is measured in C
    with the GIL released (``varint_bytes``, ~1 ns per id). A list: one pass per varint length (~25 ns per id
    and pass: used only near the limit); ``largest``, an upper bound of the ids (a model's
    ``max_token_value``), skips the passes for lengths no id can reach. Long lists are measured a slice of
    SUM_SLICE_IDS ids at a time, so the GIL can pass to the worker's other calls between slices (one pass
    over 8 M ids held it ~0.8 s).

    >>> id_bytes([1, 200, 100000])
    6
    >>> id_bytes([1, 200, 100000], largest=100276)
    6
    """
    if isinstance(ids, memoryview) and ids.format == "I":
        return varint_bytes(ids)
    steps = _VARINT_STEPS if largest is None else tuple(step for step in _VARINT_STEPS if step < largest)
    size = len(ids)
    for step in steps:
        if stop_above is not None and size > stop_above:
            break
        if len(ids) <= SUM_SLICE_IDS:
            size += sum(map(step.__lt__, ids))
            continue
        for start in range(0, len(ids), SUM_SLICE_IDS):
            size += sum(map(step.__lt__, ids[start : start + SUM_SLICE_IDS]))
            if stop_above is not None and size > stop_above:
                return size
    return size


class AnswerBudget:
    """The size of an answer of token-id lists as they are produced; raises once it cannot be sent.

    Each list first counts with the varint size of the model's largest id (an upper bound); only when
    that bound passes the limit are the lists held so far measured exactly, so no answer that fits is
    refused and the common case costs one multiplication per item.
    """

    def __init__(self, limits: Limits, *, items: int, max_token_value: int) -> None:
        self._limits = limits
        self._framing = answer_bytes(items=items)
        self._per_id = id_bytes([max_token_value])
        self._largest = max_token_value
        self._held: list[Sequence[int]] = []
        self._extra = 0  # bytes added besides the ids
        self._exact = False
        self.size = self._framing

    def add(self, ids: Sequence[int], extra: int = 0) -> None:
        """Count one id list, plus ``extra`` bytes that go with it (e.g. its offsets, already exact)."""
        self._held.append(ids)
        self._extra += extra
        if self._exact:
            self.size += id_bytes(ids, largest=self._largest) + extra
        else:
            self.size += self._per_id * len(ids) + extra
            if self.size <= self._limits.max_response_bytes:
                return
            self._exact = True
            self.size = self._framing + self._extra
            for held in self._held:
                self.size += id_bytes(held, stop_above=self._limits.max_response_bytes - self.size, largest=self._largest)
        self._limits.check_answer(self.size, partial=True)


@dataclass(frozen=True)
class Limits:
    """Bounds on one request; ``response_limit_name`` is the setting that sets ``max_response_bytes``."""

    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_response_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    response_limit_name: str = MAX_MESSAGE_BYTES
    max_chunks: int = DEFAULT_MAX_CHUNKS

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The limits under a server's settings (``max_batch_items``, ``max_request_bytes`` and
        ``max_message_bytes``): every answer must fit in one message."""
        return cls(settings.max_batch_items, settings.max_request_bytes, settings.max_message_bytes)

    @property
    def max_stream_answer_bytes(self) -> int:
        """What one stream may answer in all (``STREAM_ANSWER_MESSAGES`` times ``max_response_bytes``)."""
        return STREAM_ANSWER_MESSAGES * self.max_response_bytes

    def check_stream_answer(self, size: int) -> None:
        """Raise RequestLimitExceeded when a stream has answered (or is about to answer) over
        ``max_stream_answer_bytes`` in all; ``size`` counts each id at its model's largest id."""
        if size > self.max_stream_answer_bytes:
            raise RequestLimitExceeded(
                MAX_STREAM_ANSWER_BYTES, self.max_stream_answer_bytes, size,
                unit="bytes of streamed answer at least (ids counted at the model's largest id)",
                hint=f"a stream answers at most {STREAM_ANSWER_MESSAGES} times {self.response_limit_name} in all; "
                "lower the overlap (it repeats tokens in every chunk), raise max_tokens or send less text per stream",
            )  # fmt: skip

    def check_request(self, *, items: int, input_bytes: int) -> None:
        """Raise RequestLimitExceeded when a request is over either request limit."""
        if items > self.max_batch_items:
            raise RequestLimitExceeded(
                MAX_BATCH_ITEMS, self.max_batch_items, items, unit="batch items",
                hint="split the batch into several requests",
            )  # fmt: skip
        if input_bytes > self.max_request_bytes:
            raise RequestLimitExceeded(
                MAX_REQUEST_BYTES, self.max_request_bytes, input_bytes, unit="input bytes",
                hint="send fewer or shorter inputs per request",
            )  # fmt: skip

    def check_working_text(self, size: int) -> None:
        """Raise RequestLimitExceeded when the text the engine would work on (``size`` bytes in all, e.g. the
        normalized text of a SentencePiece Unigram model) passes ``WORKING_TEXT_FACTOR`` x ``max_request_bytes``."""
        if size > WORKING_TEXT_FACTOR * self.max_request_bytes:
            raise RequestLimitExceeded(
                MAX_REQUEST_BYTES, WORKING_TEXT_FACTOR * self.max_request_bytes, size,
                unit=f"bytes of text once the model's normalizer has rewritten it (at most {WORKING_TEXT_FACTOR} "
                "times max_request_bytes)",
                hint="this text grows under the model's normalization (e.g. U+FDFA becomes 18 characters under "
                "NFKC); send less of it per request",
            )  # fmt: skip

    def check_answer(self, size: int, *, partial: bool = False) -> None:
        """Raise RequestLimitExceeded when an answer of ``size`` bytes (a lower bound if ``partial``: the
        work stopped once it was over) could not be sent."""
        if size > self.max_response_bytes:
            raise RequestLimitExceeded(
                self.response_limit_name, self.max_response_bytes, size,
                unit="bytes of answer" + (" at least" if partial else ""),
                hint="the answer would not fit in one response; send less input per request",
            )  # fmt: skip


# For a local command line: nothing is shared, so nothing is bounded.
UNLIMITED = Limits(sys.maxsize, sys.maxsize, sys.maxsize, max_chunks=sys.maxsize)
