"""The token-budget operations of the service: offsets, truncate, chunk (batched and streamed), stream decode.

`TokenizerService` inherits them (`BudgetOperations`); the semantics are the engine's
(``tokend.engine.budget_methods``, docs/budgets.md), proved there against tiktoken. This layer adds what a
shared service needs around them: request limits before any work, one model version per call, the
special-token policy, argument errors that name the argument, deadlines and cancellation between items and
between the chunks of one long chunking, ``max_chunks`` over the whole request, and the answer's size
before it is built (offsets multiply it: four varints per token besides the id).

    service.encode_with_offsets("cl100k_base", ["hello world"]).spans[0].starts      # array('I', [0, 5])
    service.truncate("cl100k_base", ["hello world"], 1).results[0].text             # 'hello'
    service.chunk("cl100k_base", [document], 512, overlap=64).results[0]             # [TextChunk, ...]
    for chunk in service.chunk_stream("cl100k_base", document, 512): ...            # one at a time
    session = service.decode_stream("cl100k_base"); session.feed([15339]) + session.flush()

Inputs are text (``str``); raw bytes have no characters to cut at and are refused, naming the item.
Every operation starts with one pass over a whole input: its encode (made here, ``_whole_ids``, and handed to
the engine) and its alignment with the text (the engine's walk, run here, ``_alignment_runner``). Both run
with the GIL released, so a large input's are done on the worker's bulk lane as Encode's is; both stop at
the call's deadline or cancel (the engine's call stop). What stays on the handler thread, GIL held: copying
the whole encode's ids for the walk (~1 ms a MB), the special-token policy, and the chunks after the
first pass (each chunk's own encode, below ``bulk_lane_bytes``). Deadlines are also checked between items
and chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from tokend_api import MAX_CHUNKS, MAX_STREAM_ANSWER_BYTES

from tokend.engine.chunking import iter_chunks
from tokend.engine.offsets import encode_with_offsets as aligned_offsets
from tokend.engine.regex_splitter import shared_regex_time
from tokend.engine.truncation import truncate as truncated
from tokend.errors import InvalidBudgetError, TokendError, quoted
from tokend.service.batch import CallState, check_call, run_batch
from tokend.service.budget_results import (
    Chunked,
    EncodedWithOffsets,
    TextChunk,
    TokenSpans,
    Truncated,
    TruncatedText,
)
from tokend.service.budget_sizes import SPAN_FRAMING_BYTES, BytePositions, offsets_bytes, utf8_of
from tokend.service.budget_streams import ChunkStream, DecodeSession, chunking_stopped
from tokend.service.call_record import current_record
from tokend.service.chunk_ids_room import ChunkIdsRoom
from tokend.service.errors import BatchItemError, CallCancelled, DeadlineExpired, InvalidRequest, RequestLimitExceeded
from tokend.service.limits import AnswerBudget, Limits, answer_bytes, id_bytes
from tokend.service.results import ModelVersion
from tokend.service.special_policy import DEFAULT_POLICY, BoundPolicy, SpecialTokenPolicy

__all__ = ["BudgetOperations", "SIDES", "PREFERENCES"]

SIDES = ("right", "left")
PREFERENCES = ("paragraph", "sentence", "whitespace", "token")


class BudgetOperations:
    """Mixin of `TokenizerService` (which provides ``limits``, ``models`` and ``_text_request``)."""

    limits: Limits
    models: Any
    admission: Any  # TokenizerService's WorkAdmission, or None (nothing waits)
    lane: Any  # the worker's BulkLane, or None

    def _text_request(self, model: str, inputs: Sequence[str | bytes], special: SpecialTokenPolicy,
                      call: CallState | None) -> tuple[list[int], Any, BoundPolicy]:
        raise NotImplementedError  # TokenizerService's

    def _admitted(self, size: int, call: CallState | None, regex_chars: int | None = None) -> Any:
        raise NotImplementedError  # TokenizerService's

    def _working_bytes(self, operation: str, encoding: Any, inputs: Sequence[str | bytes], sizes: Sequence[int],
                       factor: int = 1, *, call: CallState | None = None) -> int:
        raise NotImplementedError  # TokenizerService's

    def _keeping_normalized(self) -> Any:
        raise NotImplementedError  # TokenizerService's

    def _bulk(self, method: Any, item: str | bytes, call: CallState | None, **options: Any) -> Any:
        raise NotImplementedError  # TokenizerService's

    def _alignment_runner(self, call: CallState | None) -> Any:
        """The engine's ``run_alignment``: ``(walk, text_bytes) -> walk()``, the alignment's GIL-free walk, on the
        bulk lane when the text is large (as ``_bulk`` does the encode), else on the calling thread."""
        lane = self.lane
        if lane is None:
            return None
        return lambda walk, size: walk() if size < lane.min_bytes else lane.run(walk, call=call, size=size)

    def _whole_ids(self, encoding: Any, call: CallState | None) -> Any:
        """``(text, **policy_arguments) -> encoding.encode(text, ...)``: the whole-text encode every budget
        operation starts with, on the bulk lane when the text is large (``_bulk``); the engine takes it as ``ids``."""
        encode = encoding.encode
        return lambda text, **policy_arguments: self._bulk(encode, text, call, **policy_arguments)

    # ---- offsets ---------------------------------------------------------------------------------
    def encode_with_offsets(
        self,
        model: str,
        inputs: Sequence[str],
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        offsets: bool = True,
        token_bytes: bool = False,
        call: CallState | None = None,
    ) -> EncodedWithOffsets:
        """The ids of each input (as ``encode``) with each token's character and byte spans (``offsets``)
        and/or the bytes of the input it spells (``token_bytes``)."""
        sizes, loaded, policy = self._text_request(model, _texts(inputs, "offsets"), special, call)
        size = sum(sizes)
        encoding = loaded.encoding
        answer = AnswerBudget(self.limits, items=len(inputs), max_token_value=encoding.max_token_value)
        whole_ids, run_alignment = self._whole_ids(encoding, call), self._alignment_runner(call)

        def offsets_of(text: str, **policy_arguments: Any) -> Any:
            return aligned_offsets(encoding, text, ids=whole_ids(text, **policy_arguments), run_alignment=run_alignment,
                                   **policy_arguments)

        def with_offsets(text: str) -> tuple[list[int], TokenSpans]:
            found = policy.apply(offsets_of, text)
            extra = offsets_bytes(found.starts, found.ends, found.byte_starts, found.byte_ends) if offsets else 0
            pieces = None
            if token_bytes:
                utf8 = utf8_of(text)
                # The token's own bytes: its byte span (byte spans of consecutive tokens are adjacent).
                extra += len(utf8) + 2 * len(found.ids) + 6  # + a tag and a length per token, and the field
                answer.add(found.ids, extra)  # before building the pieces: they double the text in memory
                pieces = [utf8[start:end] for start, end in zip(found.byte_starts, found.byte_ends)]
            else:
                answer.add(found.ids, extra)
            spans = TokenSpans(
                *((found.starts, found.ends, found.byte_starts, found.byte_ends) if offsets else (None,) * 4), pieces
            )
            return found.ids, spans

        # Offsets hold four positions per token beside each id: twice an encode's working memory.
        with self._keeping_normalized(), self._admitted(self._working_bytes("encode", encoding, inputs, sizes, 2, call=call), call, regex_chars=size):
            results = run_batch(inputs, with_offsets, call=call)
        ids = [found for found, _ in results]
        total = sum(map(len, ids))
        _record("encode", len(inputs), total, size)
        return EncodedWithOffsets(_version(loaded), ids, [spans for _, spans in results], total)

    # ---- truncation ------------------------------------------------------------------------------
    def truncate(
        self,
        model: str,
        inputs: Sequence[str],
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        call: CallState | None = None,
    ) -> Truncated:
        """The longest prefix (``side="right"``) or suffix (``"left"``) of each input whose own encoding has
        at most ``max_tokens`` tokens (tokend.engine.truncation)."""
        _whole_number(max_tokens, "max_tokens")
        sizes, loaded, policy = self._text_request(model, _texts(inputs, "truncate"), special, call)
        size = sum(sizes)
        encoding = loaded.encoding
        encoding.truncate("", max_tokens, side)  # the engine's own argument checks, before any item
        answer = AnswerBudget(self.limits, items=len(inputs), max_token_value=encoding.max_token_value)
        whole_ids, run_alignment = self._whole_ids(encoding, call), self._alignment_runner(call)

        def truncate_one(part: str, **policy_arguments: Any) -> Any:
            return truncated(encoding, part, max_tokens, side, ids=whole_ids(part, **policy_arguments),
                             run_alignment=run_alignment, **policy_arguments)

        def truncate(text: str) -> TruncatedText:
            kept = policy.apply(truncate_one, text)
            answer.add(kept.ids, SPAN_FRAMING_BYTES)
            positions = BytePositions(text)
            byte_start = positions(kept.start)
            return TruncatedText(kept.text, kept.ids, kept.start, kept.end, byte_start, positions(kept.end), kept.total_tokens)

        with self._keeping_normalized(), self._admitted(self._working_bytes("encode", loaded.encoding, inputs, sizes, call=call), call, regex_chars=size):
            results = run_batch(inputs, truncate, call=call)
        _record("truncate", len(inputs), sum(len(result.ids) for result in results), size)
        return Truncated(_version(loaded), results)

    # ---- chunking --------------------------------------------------------------------------------
    def chunk(
        self,
        model: str,
        inputs: Sequence[str],
        max_tokens: int,
        overlap: int = 0,
        prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        max_chunks: int | None = None,
        call: CallState | None = None,
    ) -> Chunked:
        """Each input cut into chunks of at most ``max_tokens`` tokens (tokend.engine.chunking).

        ``max_chunks`` is the caller's bound per input (InvalidBudgetError, as in the engine); the
        service's ``limits.max_chunks`` bounds the whole request (RequestLimitExceeded)."""
        sizes, loaded, policy = self._chunk_request(model, inputs, max_tokens, overlap, prefer, special, max_chunks, call)
        size = sum(sizes)
        encoding = loaded.encoding
        answer = AnswerBudget(self.limits, items=len(inputs), max_token_value=encoding.max_token_value)
        whole_ids, run_alignment = self._whole_ids(encoding, call), self._alignment_runner(call)
        made = text_bytes = 0
        # The chunks' ids until the answer is sent: an overlap repeats them beyond what the input's estimate covers.
        room = ChunkIdsRoom(self.admission, call, input_bytes=size)

        def chunk(index: int, text: str) -> list[TextChunk]:
            nonlocal made, text_bytes
            chunks = []
            try:
                chunking = _Chunking(self.limits, encoding, policy, whole_ids, text, max_tokens, overlap, prefer, max_chunks, made,
                                     text_bytes=text_bytes, stream=False, run_alignment=run_alignment)
            except InvalidBudgetError as exc:
                raise _over_the_limit(exc, self.limits, made, max_chunks, overlap) from exc
            for piece in chunking.chunks(call, index, len(inputs)):
                answer.add(piece.ids, SPAN_FRAMING_BYTES)
                room.add(len(piece.ids))
                chunks.append(piece)
            made += len(chunks)
            text_bytes = chunking.text_bytes
            return chunks

        # Offsets of the whole encoding beside its ids while the chunks are found: as encode_with_offsets.
        try:
            with self._keeping_normalized(), self._admitted(self._working_bytes("encode", encoding, inputs, sizes, 2, call=call), call, regex_chars=size):
                results = run_batch(inputs, chunk, call=call, with_index=True)
        finally:
            room.release()  # (with a front-end record, its room is given back at the call's end instead)
        _record("chunk", len(inputs), sum(len(piece.ids) for chunks in results for piece in chunks), size)
        return Chunked(_version(loaded), results)

    def chunk_stream(
        self,
        model: str,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        max_chunks: int | None = None,
        call: CallState | None = None,
    ) -> ChunkStream:
        """The chunks of one document, one at a time (``ChunkStream``: ``.model``, then iterate). Request,
        argument and special-token errors are raised here; the whole-text pass is done here too."""
        sizes, loaded, policy = self._chunk_request(model, [text], max_tokens, overlap, prefer, special, max_chunks, call)
        size = sum(sizes)
        # Held until the stream's call ends (its record's end), or at once without a front-end record.
        with (
            self._keeping_normalized(),
            self._admitted(self._working_bytes("encode", loaded.encoding, [text], sizes, 2, call=call), call, regex_chars=size) as regex_time,
            _the_document(),
        ):
            try:
                chunking = _Chunking(self.limits, loaded.encoding, policy, self._whole_ids(loaded.encoding, call), text,
                                     max_tokens, overlap, prefer, max_chunks, 0, text_bytes=0, stream=True,
                                     run_alignment=self._alignment_runner(call))
            except InvalidBudgetError as exc:
                raise _over_the_limit(exc, self.limits, 0, max_chunks, overlap) from exc

        per_id = id_bytes([loaded.encoding.max_token_value])  # an upper bound of each id's size

        def chunks() -> Iterator[TextChunk]:
            tokens = streamed = 0
            found = chunking.chunks(call, 0, 1)
            limits, framing = self.limits, answer_bytes(items=1) + SPAN_FRAMING_BYTES
            with _the_document():
                while True:
                    # Encoded as the client reads, a few chunks ahead: in the request's regex time, entered for
                    # this step only (a context variable set across a yield would leak into the reader's
                    # context), and once for a group (entering it per chunk cost ~1.5 us a chunk).
                    pulled, stopped = _pulled(found, regex_time)
                    record = current_record()
                    for piece in pulled:
                        # Each chunk travels in its own part of the answer: it alone must fit one message; all
                        # of them together, max_stream_answer_bytes (an overlap repeats tokens in every chunk).
                        limits.check_answer(framing + 5 * len(piece.ids))
                        streamed += SPAN_FRAMING_BYTES + per_id * len(piece.ids)
                        limits.check_stream_answer(streamed)
                        tokens += len(piece.ids)
                        if record is not None:
                            record.tokens = tokens
                        yield piece
                    if stopped is not None:
                        raise stopped
                    if not pulled:
                        return

        _record("chunk", 1, 0, size)
        return ChunkStream(_version(loaded), chunks())

    def _chunk_request(
        self, model: str, inputs: Sequence[str], max_tokens: int, overlap: int, prefer: str,
        special: SpecialTokenPolicy, max_chunks: int | None, call: CallState | None,
    ) -> tuple[list[int], Any, BoundPolicy]:  # fmt: skip
        _whole_number(max_tokens, "max_tokens")
        _whole_number(overlap, "overlap")
        if max_chunks is not None:
            _whole_number(max_chunks, "max_chunks")
            if max_chunks < 1:
                raise InvalidBudgetError("max_chunks", f"max_chunks must be at least 1 (or unset), got {max_chunks}")
        sizes, loaded, policy = self._text_request(model, _texts(inputs, "chunk"), special, call)
        loaded.encoding.iter_chunks("", max_tokens, overlap, prefer)  # the engine's own argument checks
        return sizes, loaded, policy

    # ---- streaming decode ------------------------------------------------------------------------
    def decode_stream(
        self, model: str, *, errors: Literal["replace", "strict"] = "replace", call: CallState | None = None
    ) -> DecodeSession:
        """A decoding session for one sequence of generated ids (``feed(ids) -> str``, ``flush()``); errors
        name the message (``messages[i]``) that caused them."""
        from tokend.service.tokenizer import DECODE_ERRORS

        if errors not in DECODE_ERRORS:
            raise InvalidRequest("errors", f"unknown value {quoted(errors)}; use one of {', '.join(DECODE_ERRORS)}")
        loaded = self.models.load(model, call=call)
        return DecodeSession(self.limits, _version(loaded), loaded.encoding, errors, call)


class _Chunking:
    """The chunks of one input under the request's bounds: the engine's ``iter_chunks`` (its whole-text
    pass runs here, at once, the encode by ``whole_ids``, the walk by ``run_alignment``), byte positions added, the
    call checked before each chunk.

    The chunks' texts together (``text_bytes``, UTF-8, from the request's earlier inputs on) are at most what
    the operation may answer (Chunk: ``max_response_bytes``; a stream: ``max_stream_answer_bytes``): each chunk
    is encoded from its own text, and an overlap repeats a chunk's text in the next ones, so without this bound
    the work grows with the overlap, not the input (589 KB of 128-space tokens in chunks of 2,300 overlapping
    by 2,299: 2.9 s of CPU). Without an overlap they are the input."""

    def __init__(self, limits, encoding, policy, whole_ids, text, max_tokens, overlap, prefer, max_chunks, made_before, *, text_bytes: int, stream: bool,
                 run_alignment: Any) -> None:
        self.limits = limits
        self.caller_bound = max_chunks
        self.made_before = made_before
        self.text_bytes = text_bytes
        self.text_limit = (MAX_STREAM_ANSWER_BYTES, limits.max_stream_answer_bytes) if stream else (limits.response_limit_name, limits.max_response_bytes)
        remaining = limits.max_chunks - made_before
        if remaining < 1:
            raise RequestLimitExceeded(
                MAX_CHUNKS, limits.max_chunks, made_before + 1, unit="chunks at least",
                hint="send fewer inputs per request, raise max_tokens, or use ChunkStream per document",
            )  # fmt: skip
        self.bound = remaining if max_chunks is None else min(remaining, max_chunks)
        self.text = text
        self.overlap = overlap
        self.pieces = policy.apply(
            lambda part, **policy_arguments: iter_chunks(
                encoding, part, max_tokens, overlap, prefer, max_chunks=self.bound,
                ids=whole_ids(part, **policy_arguments), run_alignment=run_alignment, **policy_arguments,
            ),
            text,
        )  # fmt: skip

    def chunks(self, call: CallState | None, item: int, items: int) -> Iterator[TextChunk]:
        positions = BytePositions(self.text)
        pieces, made_chunk = self.pieces, TextChunk._made
        made = 0
        while True:
            if call is not None:
                try:
                    check_call(call, completed=item, total=items)
                except (DeadlineExpired, CallCancelled) as exc:
                    raise chunking_stopped(exc, chunks=made, item=item) from None
            try:
                piece = next(pieces, None)
            except InvalidBudgetError as exc:
                raise _over_the_limit(exc, self.limits, self.made_before, self.caller_bound, self.overlap) from exc
            if piece is None:
                return
            made += 1
            start, end = piece.start, piece.end
            byte_start, byte_end = positions(start), positions(end)
            self.text_bytes += byte_end - byte_start
            if self.text_bytes > self.text_limit[1]:
                raise _too_much_chunk_text(self.text_limit, self.text_bytes, self.overlap)
            # The input, not piece.text: a chunk's text is sliced from it when asked (TextChunk.text)
            yield made_chunk(self.text, piece.ids, start, end, byte_start, byte_end)


def _too_much_chunk_text(limit: tuple[str, int], size: int, overlap: int) -> RequestLimitExceeded:
    hint = "send less text per request"
    if overlap:
        hint = "each chunk's text repeats the tokens its overlap shares: lower the overlap, raise max_tokens or " + hint
    return RequestLimitExceeded(limit[0], limit[1], size, unit="bytes of chunk text at least", hint=hint)


# A ChunkStream computes this many chunks (or this many ids) ahead of the one its reader is sent, at most
STREAM_PULL_CHUNKS = 64
STREAM_PULL_IDS = 16_384


def _pulled(found: Iterator[TextChunk], regex_time: Any) -> tuple[list[TextChunk], Exception | None]:
    """The next chunks of a stream, and the error that stopped them (raised once those before it are sent,
    so a stream stopped by its deadline after 5 chunks has sent those 5, as one chunk at a time would)."""
    pulled: list[TextChunk] = []
    ids = 0
    with shared_regex_time(regex_time):
        try:
            for piece in found:
                pulled.append(piece)
                ids += len(piece.ids)
                if len(pulled) == STREAM_PULL_CHUNKS or ids >= STREAM_PULL_IDS:
                    break
        except Exception as exc:  # noqa: BLE001 - re-raised by the caller after the chunks before it
            return pulled, exc
    return pulled, None


@contextmanager
def _the_document() -> Iterator[None]:
    """Domain errors about the one document of a stream name it as ``inputs[0]``, as Chunk names its items."""
    try:
        yield
    except (TokendError, UnicodeDecodeError) as exc:
        raise BatchItemError("inputs[0]", 0, exc) from exc


def _over_the_limit(
    exc: InvalidBudgetError, limits: Limits, made_before: int, caller_bound: int | None, overlap: int
) -> Exception:
    """The engine's "more than max_chunks" is the caller's own bound (kept) or the service's limit."""
    if exc.argument != "max_chunks" or (caller_bound is not None and caller_bound <= limits.max_chunks - made_before):
        return exc
    # The engine's count from the text's tokens (tokend.engine.chunking.least_chunks), when it had one.
    least = made_before + getattr(exc, "least_chunks", limits.max_chunks + 1 - made_before)
    hint = "raise max_tokens or send less text per request"
    if overlap:
        hint = "lower the overlap (each chunk advances max_tokens - overlap tokens), raise max_tokens or send less text per request"
    return RequestLimitExceeded(MAX_CHUNKS, limits.max_chunks, least, unit="chunks at least", hint=hint)


def _texts(inputs: Sequence[Any], operation: str) -> Sequence[str]:
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            raise InvalidRequest(
                f"inputs[{index}]",
                f"{operation} takes text (characters to cut at or to point into), not raw bytes; send it as text",
            )
    return inputs


def _whole_number(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"must be a whole number, got {type(value).__name__}")


def _version(loaded: Any) -> ModelVersion:
    return ModelVersion(loaded.name, loaded.version)


def _record(operation: str, items: int, tokens: int, size: int) -> None:
    record = current_record()
    if record is not None:
        record.operation, record.items, record.tokens, record.input_bytes = operation, items, tokens, size

