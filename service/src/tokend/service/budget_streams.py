"""The two streamed budget operations as objects a front-end drives: the chunks of one document, and a
decoding session for ids that arrive a few at a time.

    stream = service.chunk_stream("cl100k_base", document, 512)
    stream.model                                   # ModelVersion, known before the first chunk
    for chunk in stream: send(chunk)               # deadline and cancellation checked before each chunk

    session = service.decode_stream("cl100k_base")
    session.feed([15339]), session.feed([1917], flush=True)     # ('hello', ' world')

A session checks the call before each message and bounds each message like a Decode request (ids
against ``max_request_bytes``, its text against the answer limit). Errors name the message that caused
them (``messages[i]``). Not handled: a bound on a session's length (a generation may be long; the call's
deadline and the connection's maximum age end it; the gRPC server ends a stream whose client goes quiet,
or gives its slot to a new stream, tokend.server.idle_streams, and paces its messages, tokend.server.stream_pace).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tokend.errors import TokendError
from tokend.service.batch import CallState, check_call
from tokend.service.call_record import current_record
from tokend.service.errors import BatchItemError, CallCancelled, DeadlineExpired, RequestError
from tokend.service.limits import BYTES_PER_TOKEN_ID, Limits, answer_bytes, text_bytes
from tokend.service.results import ModelVersion
from tokend.service.token_sizes import decoded_bytes

__all__ = ["ChunkStream", "DecodeSession", "StreamDeadlineExpired", "chunking_stopped"]


@dataclass(frozen=True)
class ChunkStream:
    """The model version, then the chunks (``TextChunk``) as they are made."""

    model: ModelVersion
    chunks: Iterator[Any]

    def __iter__(self) -> Iterator[Any]:
        return self.chunks


class StreamDeadlineExpired(DeadlineExpired):
    """The deadline passed inside one long item or stream; ``done`` says how far the work got."""

    def __init__(self, done: str, completed: int, total: int) -> None:
        RequestError.__init__(
            self, f"deadline exceeded after {done}; work for this call was stopped. Give the call a longer "
            "deadline or send less text per call"
        )  # fmt: skip
        self.completed = completed
        self.total = total


def chunking_stopped(exc: Exception, *, chunks: int, item: int) -> Exception:
    """The error that stops a chunking between two chunks (the call's deadline passed, or its client left),
    saying how far it got."""
    if isinstance(exc, DeadlineExpired):
        return StreamDeadlineExpired(f"{chunks} chunks of inputs[{item}]", exc.completed, exc.total)
    if isinstance(exc, CallCancelled):
        return CallCancelled(f"the client cancelled the call after {chunks} chunks of inputs[{item}]")
    return exc


class DecodeSession:
    """Incremental decoding of one stream of messages (the engine's ``StreamDecoder`` under request bounds)."""

    def __init__(self, limits: Limits, model: ModelVersion, encoding: Any, errors: str, call: CallState | None) -> None:
        self.model = model
        self.messages = 0
        self.tokens = 0
        self._limits = limits
        self._encoding = encoding
        self._decoder = encoding.decoder(errors)
        self._call = call
        self._record()

    @property
    def pending(self) -> bytes:
        """Bytes fed but not yet decoded (the start of a character)."""
        return self._decoder.pending

    def feed(self, ids: Sequence[int], *, flush: bool = False) -> str:
        """The characters ``ids`` complete; with ``flush`` also the held-back bytes (the sequence ends)."""
        index = self.messages
        self.messages += 1
        if self._call is not None:
            try:
                check_call(self._call, completed=index, total=index + 1)
            except DeadlineExpired:
                raise StreamDeadlineExpired(f"{index} messages", index, index + 1) from None
            except CallCancelled:
                raise CallCancelled(f"the client cancelled the stream after {index} messages") from None
        self._limits.check_request(items=1, input_bytes=BYTES_PER_TOKEN_ID * len(ids))
        framing = answer_bytes(items=1)
        enough = self._limits.max_response_bytes - framing
        self._limits.check_answer(framing + decoded_bytes(self._encoding, [ids], enough=enough))
        try:
            text = self._decoder.feed(ids)
            if flush:
                text += self._decoder.flush()
        except (TokendError, UnicodeDecodeError) as exc:
            raise BatchItemError(f"messages[{index}]", index, exc) from exc
        self.tokens += len(ids)
        self._limits.check_answer(framing + text_bytes(text))
        self._record()
        return text

    def flush(self) -> str:
        """End the sequence: the held-back bytes, decoded with the session's ``errors``."""
        return self.feed((), flush=True)

    def _record(self) -> None:
        record = current_record()
        if record is not None:
            record.model = (self.model.name, self.model.version)
            record.operation, record.items, record.tokens = "decode", self.messages, self.tokens
