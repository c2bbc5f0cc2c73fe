"""`RemoteEncoding.decoder()`: generated ids in, text out, never a broken character — decoded here or on the
server.

The user is a serving system turning a model's generated ids into text as they come: one or a few ids
per step, many sequences at once, for minutes. What it needs is a `feed` that costs next to nothing and
holds no server resource. So, where the client can be exact on its own, it decodes locally:

- **local** (`TableStreamDecoder`): every token's bytes are fetched once per pinned model version (one
  batched Decode of every id, ~1-2 MB; a `TokenTable` shared by all decoders of that `RemoteEncoding`),
  then `feed` is a table lookup and Python's incremental UTF-8 decoder — as the engine's `StreamDecoder`
  does. Exact for byte-level BPE (tiktoken and minbpe models), where a token's text is its bytes whatever
  came before. Any `errors` handler works, an unknown id raises and leaves the decoder as it was. Refused
  for SentencePiece models (a run of byte pieces decodes on its own, one U+FFFD a malformed byte).
- **stream** (`RemoteStreamDecoder`): a bidi DecodeStream; the server's engine decodes (exact for every
  family, e.g. SentencePiece's leading-space rule), one round trip per `feed`. It holds one of the server
  worker's stream slots for as long as it is open, has no deadline (a generation may be long: `close()` it,
  or use it as a context manager), supports errors "replace" and "strict", and after an error starts a new
  sequence (the stream is gone with the error).
- **auto** (default): local for byte-level BPE models (`payload_format` "tiktoken" or "minbpe"), stream
  otherwise.

Measured (`python -m bench budget-service`, docs/bench-budget-service.md): local ~0.6 µs per id, as the engine's
own decoder; stream 200-350 µs per id (a round trip); the table fetch ~0.75 s for cl100k_base.

    decoder = enc.decoder()                     # enc = client.get_encoding("cl100k_base")
    for ids in generation: print(decoder.feed(ids), end="")
    print(decoder.flush())
"""

from __future__ import annotations

import codecs
import queue
import threading
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend_api import Reason

from ._error_mapping import code_and_message, exception_for, status_details_of
from ._exceptions import ProtocolError, UnknownTokenIdError

__all__ = [
    "stream_exception",
    "LOCAL_PAYLOAD_FORMATS",
    "MODES",
    "RemoteStreamDecoder",
    "TableStreamDecoder",
    "TokenTable",
    "TokenTableBuilder",
    "check_errors",
    "stream_errors",
]

# Model families whose token bytes are their text, whatever comes before (byte-level BPE).
LOCAL_PAYLOAD_FORMATS = frozenset({"tiktoken", "minbpe"})
MODES = ("auto", "local", "stream")
TABLE_SLICE = 8192  # ids per batched Decode while fetching a table (one unknown id costs a retry of its slice)
MAX_MISSING = 4096  # ids a model may lack below its largest id before local decoding is refused
_STREAM_ERRORS = {"replace": pb.DecodeRequest.ERRORS_REPLACE, "strict": pb.DecodeRequest.ERRORS_STRICT}


def stream_exception(error: grpc.RpcError, ref: str, pending: bytes) -> Exception:
    """The exception for a DecodeStream that ended in an error: `exception_for`'s, except that invalid UTF-8
    under errors="strict" is Python's own UnicodeDecodeError, as the engine's decoder raises it (the bytes
    it holds are those held back before the failing message; the server's words are the reason)."""
    mapped = exception_for(error, ref=ref)
    info = status_details_of(error).error_info.get(Reason.UNICODE_DECODE_ERROR)
    if info is None:
        return mapped
    offset = int(info.get("offset", "0") or 0)
    reason = code_and_message(error)[1].rpartition("(")[2].partition(")")[0] or "invalid UTF-8"
    return UnicodeDecodeError("utf-8", pending, min(offset, len(pending)), len(pending), reason)


def check_errors(errors: object) -> str:
    """`errors` as the engine's decoder checks it: a str naming a codec error handler."""
    if not isinstance(errors, str):
        raise TypeError(f"errors must be a str, got {type(errors).__name__}")
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise ValueError(
            f"errors={errors!r} is not a codec error handler; use 'replace', 'strict', 'ignore', "
            "'backslashreplace' or 'surrogateescape'"
        ) from None
    return errors


def stream_errors(errors: str) -> int:
    try:
        return _STREAM_ERRORS[errors]
    except KeyError:
        raise ValueError(
            f"errors={errors!r}: the server decodes a stream with 'replace' or 'strict' only; use one of those, "
            "or mode='local' (any handler) for a byte-level BPE model"
        ) from None


class TokenTable:
    """Every token's bytes of one model version: one blob, offsets into it, the ids the model lacks."""

    def __init__(self, blob: bytes, ends: array, missing: frozenset[int]) -> None:
        self._blob = blob
        self._ends = ends  # token t is blob[ends[t]:ends[t + 1]]
        self._missing = missing

    def __len__(self) -> int:
        return len(self._ends) - 1

    def join(self, ids: list[int]) -> bytes:
        """The bytes of `ids`; an id the model lacks raises UnknownTokenIdError (a KeyError) naming it."""
        blob, ends, size = self._blob, self._ends, len(self._ends) - 1
        parts = []
        for token in ids:
            if not 0 <= token < size or token in self._missing:
                raise UnknownTokenIdError(token)
            parts.append(blob[ends[token] : ends[token + 1]])
        return b"".join(parts)


class TokenTableSparse(Exception):
    """The model lacks too many ids below its largest one for a table (local decoding is refused)."""


class TokenTableBuilder:
    """Fetching a table, without I/O: ask `next_ids()`, decode each id of it alone (one batched Decode), then
    report `received(values)` or `unknown(position)` (the item an UnknownTokenIdError named)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._start = 0
        self._slice: list[int] = []
        self._pieces: list[bytes] = [b""] * size
        self._missing: set[int] = set()

    def next_ids(self) -> list[int] | None:
        if not self._slice:
            if self._start >= self._size:
                return None
            stop = min(self._size, self._start + TABLE_SLICE)
            self._slice, self._start = list(range(self._start, stop)), stop
        return self._slice

    def received(self, values: list[bytes]) -> None:
        for token, value in zip(self._slice, values):
            self._pieces[token] = value
        self._slice = []

    def unknown(self, position: int | None) -> None:
        if position is None or not 0 <= position < len(self._slice):
            raise ProtocolError("Decode refused an unknown id without naming the item; the server is broken")
        self._missing.add(self._slice.pop(position))
        if len(self._missing) > MAX_MISSING:
            raise TokenTableSparse(f"the model lacks more than {MAX_MISSING} ids below its largest id")

    def build(self) -> TokenTable:
        ends = array("I", [0])
        total = 0
        for piece in self._pieces:
            total += len(piece)
            ends.append(total)
        return TokenTable(b"".join(self._pieces), ends, frozenset(self._missing))


class TableStreamDecoder:
    """Incremental decoding from a `TokenTable`; the same behaviour as the engine's `StreamDecoder`."""

    def __init__(self, table: TokenTable, errors: str = "replace") -> None:
        self.errors = check_errors(errors)
        self._table = table
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors)

    def feed(self, ids: int | Iterable[int]) -> str:
        """The characters `ids` complete (possibly ""); an unknown id raises and changes nothing."""
        data = self._table.join([ids] if isinstance(ids, int) else list(ids))
        try:
            return self._utf8.decode(data)
        except UnicodeDecodeError:
            self._utf8.reset()
            raise

    def flush(self) -> str:
        """End the sequence: the pending bytes decoded with `errors`; the decoder then starts afresh."""
        try:
            return self._utf8.decode(b"", final=True)
        finally:
            self._utf8.reset()

    @property
    def pending(self) -> bytes:
        """Bytes fed but not yet returned (the start of an incomplete character)."""
        return self._utf8.getstate()[0]

    def close(self) -> None:
        """Nothing to release (for symmetry with the stream decoder)."""

    def __enter__(self) -> TableStreamDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_END = object()


class RemoteStreamDecoder:
    """Incremental decoding on the server over one bidi DecodeStream (opened at the first `feed`)."""

    def __init__(self, stub_factory: Any, ref: str, expect: tuple[str, int], errors: str = "replace") -> None:
        self.errors = check_errors(errors)
        self._wire_errors = stream_errors(errors)
        self._stub_factory = stub_factory
        self._ref = ref
        self._expect = expect
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[Any] | None = None
        self._responses: Any = None
        self._pending = b""

    def feed(self, ids: int | Iterable[int]) -> str:
        tokens = [ids] if isinstance(ids, int) else list(ids)
        return self._exchange(pb.DecodeStreamRequest(ids=tokens))

    def flush(self) -> str:
        if self._requests is None:
            return ""  # nothing was fed since the last flush: nothing is held back
        return self._exchange(pb.DecodeStreamRequest(flush=True))

    @property
    def pending(self) -> bytes:
        return self._pending

    def close(self) -> None:
        """End the stream (what is still held back is dropped; `flush()` first to have it)."""
        with self._lock:
            self._end_stream()

    def __enter__(self) -> RemoteStreamDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        requests = getattr(self, "_requests", None)
        if requests is not None:
            requests.put(_END)

    def _exchange(self, request: pb.DecodeStreamRequest) -> str:
        with self._lock:
            if self._requests is None:
                self._open(request)
            else:
                self._requests.put(request)
            try:
                response = next(self._responses)
            except grpc.RpcError as error:
                pending = self._pending
                self._end_stream(cancel=True)
                raise stream_exception(error, self._ref, pending) from error
            except StopIteration:
                self._end_stream(cancel=True)
                raise ProtocolError("DecodeStream ended without answering a request; the server is broken") from None
            if response.HasField("model") and (response.model.name, response.model.version) != self._expect:
                self._end_stream(cancel=True)
                raise ProtocolError(f"DecodeStream was answered by {response.model.name}@{response.model.version}")
            self._pending = response.pending
            return response.text

    def _open(self, first: pb.DecodeStreamRequest) -> None:
        first.model, first.errors = self._ref, self._wire_errors
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        requests.put(first)

        def messages() -> Iterator[pb.DecodeStreamRequest]:
            while (message := requests.get()) is not _END:
                yield message

        self._requests = requests
        # No deadline: the stream lives as long as the generation it decodes.
        self._responses = self._stub_factory().DecodeStream(messages())

    def _end_stream(self, *, cancel: bool = False) -> None:
        if self._requests is None:
            return
        requests, responses = self._requests, self._responses
        self._requests = self._responses = None
        self._pending = b""
        requests.put(_END)
        if cancel:
            responses.cancel()
            return
        try:
            for _ in responses:  # the server's last flush, if anything was held back; then the stream ends OK
                pass
        except grpc.RpcError:
            pass  # closing: a late error has nobody to go to
