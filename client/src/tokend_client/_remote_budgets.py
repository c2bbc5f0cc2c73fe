"""Token budgets on `RemoteEncoding`: offsets, truncation, chunking and streaming decode, with the engine's
signatures, result types and exception classes (docs/budgets.md; docs/client.md for what differs).

    enc.encode_with_offsets("hi 🤖").spans()        # [(0, 2), (2, 4), (3, 4), (3, 4)]
    enc.truncate(document, 8000).text                # the longest prefix of <= 8000 tokens (own encoding)
    enc.chunk(document, 512, overlap=64)             # [Chunk(text, start, end, ids), ...]
    for chunk in enc.iter_chunks(book, 512): ...     # ChunkStream: chunks as the server makes them
    decoder = enc.decoder(); decoder.feed(ids) + decoder.flush()

Client additions (the engine has them too): `truncate_batch` and `chunk_batch`, one batched RPC for many
texts, split under the server's limits like `encode_batch`.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, AbstractSet, Literal

import grpc
from tokend_api.policy_message import to_message

from ._budget_operations import (
    PreparedTexts,
    check_chunk_arguments,
    check_truncate_arguments,
    chunk_operation,
    chunk_request,
    offsets_operation,
    read_chunks,
    token_offsets,
    truncate_operation,
    truncation,
)
from ._budget_results import Chunk, TokenOffsets, Truncation
from ._error_mapping import exception_for
from ._exceptions import LimitExceededError, ProtocolError
from ._stream_decoders import (
    LOCAL_PAYLOAD_FORMATS,
    MODES,
    RemoteStreamDecoder,
    TableStreamDecoder,
    TokenTable,
    TokenTableBuilder,
    TokenTableSparse,
    check_errors,
)

if TYPE_CHECKING:
    from ._client import TokendClient
    from ._models import ModelDetails

AllowedSpecial = Literal["all"] | AbstractSet[str]
DisallowedSpecial = Literal["all"] | Collection[str]
Prefer = Literal["paragraph", "sentence", "whitespace", "token"]


class RemoteBudgetMethods:
    """Mixin of `RemoteEncoding` (which provides `_client`, `_ref`, `_expect`, `_run`, `details`)."""

    _client: TokendClient
    _ref: str
    _expect: tuple[str, int]

    def __init__(self, details: object) -> None:
        super().__init__(details)  # type: ignore[call-arg]
        self._table: TokenTable | None = None  # every token's bytes, for decoder(mode="local"); fetched once
        self._table_lock = threading.Lock()

    # -- offsets -----------------------------------------------------------------------------------

    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> TokenOffsets:
        """`encode(text)` plus each token's character span (into `text`) and byte span (into its UTF-8)."""
        texts = PreparedTexts([text])
        operation = offsets_operation(self._ref, to_message(allowed_special, disallowed_special), self._expect)
        ids, offsets = self._run(operation, texts.prepared(), batch_call=False)[0]  # type: ignore[attr-defined]
        return token_offsets(ids, offsets, texts.maps[0])

    # -- truncation --------------------------------------------------------------------------------

    def truncate(
        self,
        text: str,
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> Truncation:
        """The longest prefix ("right") or suffix ("left") of `text` whose own encoding has at most
        `max_tokens` tokens; `.ids` is `encode(.text)`."""
        return self._truncate([text], max_tokens, side, allowed_special, disallowed_special, batch_call=False)[0]

    def truncate_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[Truncation]:
        """`truncate` of each text, in order (batched RPCs); an error names the batch item (`.item`)."""
        return self._truncate(texts, max_tokens, side, allowed_special, disallowed_special, batch_call=True)

    def _truncate(self, texts, max_tokens, side, allowed_special, disallowed_special, *, batch_call) -> list[Truncation]:
        check_truncate_arguments(max_tokens, side)
        prepared = PreparedTexts(texts)
        policy = to_message(allowed_special, disallowed_special)
        operation = truncate_operation(self._ref, policy, max_tokens, side, self._expect)
        results = self._run(operation, prepared.prepared(), batch_call=batch_call)  # type: ignore[attr-defined]
        return [truncation(message, characters) for message, characters in zip(results, prepared.maps)]

    # -- chunking ----------------------------------------------------------------------------------

    def chunk(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> list[Chunk]:
        """`text` in consecutive chunks of at most `max_tokens` tokens each (own encoding), `overlap` tokens
        shared between neighbours, cut preferably at `prefer` separators. One Chunk RPC: the whole answer
        must fit one message; `iter_chunks` streams instead."""
        return self._chunk(
            [text], max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, batch_call=False
        )[0]

    def chunk_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> list[list[Chunk]]:
        """`chunk` of each text, in order (batched RPCs; `max_chunks` applies to each text)."""
        return self._chunk(
            texts, max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, batch_call=True
        )

    def _chunk(self, texts, max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, *, batch_call):
        check_chunk_arguments(max_tokens, overlap, prefer, max_chunks)
        prepared = PreparedTexts(texts)
        policy = to_message(allowed_special, disallowed_special)
        operation = chunk_operation(self._ref, policy, max_tokens, overlap, prefer, max_chunks, self._expect)
        results = self._run(operation, prepared.prepared(), batch_call=batch_call)  # type: ignore[attr-defined]
        return [read_chunks(messages, characters) for messages, characters in zip(results, prepared.maps)]

    def iter_chunks(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> Iterator[Chunk]:
        """`chunk`, one chunk at a time over a ChunkStream (no answer-size limit for the whole document);
        argument, special-token and request errors are raised by this call, not by the first `next`.
        Stopping early (closing the iterator) cancels the stream, and the server stops chunking."""
        check_chunk_arguments(max_tokens, overlap, prefer, max_chunks)
        prepared = PreparedTexts([text])
        _check_size(prepared.sizes[0], self._client.limits.max_bytes)
        request = chunk_request(
            self._ref, to_message(allowed_special, disallowed_special), prepared.inputs, max_tokens, overlap, prefer,
            max_chunks,
        )  # fmt: skip
        responses = self._client._pool.stub().ChunkStream(request, timeout=self._client._settings.timeout)
        try:
            first = next(responses)
        except grpc.RpcError as error:
            raise exception_for(error, ref=self._ref) from error
        except StopIteration:
            raise ProtocolError("ChunkStream ended without a message; the server is broken") from None
        _check_version("ChunkStream", first, self._expect)
        return _chunks(responses, first, prepared.maps[0], self._ref)

    # -- streaming decode --------------------------------------------------------------------------

    def decoder(self, errors: str = "replace", *, mode: Literal["auto", "local", "stream"] = "auto"):
        """An incremental decoder: `feed(ids) -> str` returns only complete characters, `flush()` the rest.

        `mode` (a client addition): "local" decodes here from the model's token table (fetched on the
        first call, once per RemoteEncoding), "stream" on the server over a DecodeStream, "auto" local
        for byte-level BPE models and stream otherwise (tokend_client._stream_decoders says why)."""
        check_errors(errors)
        local = _local_mode(mode, self.details)  # type: ignore[attr-defined]
        if local:
            table = self._token_table(required=mode == "local")
            if table is not None:
                return TableStreamDecoder(table, errors)
        return RemoteStreamDecoder(self._client._pool.stub, self._ref, self._expect, errors)

    def _token_table(self, *, required: bool) -> TokenTable | None:
        with self._table_lock:
            if self._table is None:
                builder = TokenTableBuilder(self.max_token_value + 1)  # type: ignore[attr-defined]
                try:
                    while (ids := builder.next_ids()) is not None:
                        try:
                            builder.received(self.decode_tokens_bytes(ids))  # type: ignore[attr-defined]
                        except KeyError as error:  # UnknownTokenIdError names the id's position
                            builder.unknown(getattr(error, "item", None))
                except TokenTableSparse as sparse:
                    if required:
                        raise ValueError(f"mode='local' is not possible for {self._ref}: {sparse}") from None
                    return None
                self._table = builder.build()
            return self._table


def _local_mode(mode: str, details: ModelDetails) -> bool:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if mode == "local" and details.algorithm.startswith("sentencepiece"):
        # A SentencePiece model's text is not its tokens' bytes put together (a run of byte pieces decodes
        # on its own, one U+FFFD a malformed byte, and a control piece ends it): a table cannot be exact
        raise ValueError(
            f"mode='local' is not exact for {details.name}@{details.version} ({details.algorithm}): "
            "use mode='stream' or 'auto' (the server decodes)"
        )
    return mode == "local" or (mode == "auto" and details.payload_format in LOCAL_PAYLOAD_FORMATS)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise LimitExceededError(
            f"the text is {size} bytes, over the server's limit of {max_bytes} bytes per request "
            "(max_request_bytes); split it at a natural boundary yourself or raise the server's --max-request-bytes",
            limit=max_bytes,
        )


def _check_version(method: str, first: object, expect: tuple[str, int]) -> None:
    answered = (first.model.name, first.model.version)  # type: ignore[attr-defined]
    if answered != expect:
        raise ProtocolError(f"{method} was answered by {answered[0]}@{answered[1]}, not {expect[0]}@{expect[1]}")


def _chunks(responses, first, characters, ref) -> Iterator[Chunk]:
    try:
        yield from read_chunks(first.chunks, characters)
        for response in responses:
            yield from read_chunks(response.chunks, characters)
    except grpc.RpcError as error:
        raise exception_for(error, ref=ref) from error
    finally:
        responses.cancel()  # a no-op once the stream ended; stops the server's work when the reader stopped
