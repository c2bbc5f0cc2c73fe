"""`RemoteEncoding`: `tiktoken.Encoding`'s surface, computed by a tokend server.

Swap one line and keep the rest, error handling included:

    enc = tiktoken.get_encoding("cl100k_base")        # before
    enc = client.get_encoding("cl100k_base")          # after (client = TokendClient(...))
    enc.encode("hello <|endoftext|>", allowed_special="all")   # [15339, 220, 100257]

Same parameters, defaults, results and exception classes as tiktoken: a disallowed special token raises
`DisallowedSpecialTokenError` (a ValueError), an unknown id `UnknownTokenIdError` (a KeyError),
`decode(..., errors="strict")` Python's own UnicodeDecodeError (decoding happens here, from the bytes the
server returns, with any Python error handler). Plus `version` (the exact model version), `count`,
`count_batch`, `count_ordinary` and `encode_bytes`, as in the `tokend` engine, and `encode_chat` /
`count_chat` with the parameters and results of the registry's `LoadedModel` (not `limits=`: the server
bounds templates; the call's deadline is `timeout`).

Not handled: `encode_with_unstable`, `token_byte_values` and the
other rank-table introspection (the vocabulary stays on the server). `num_threads=` is accepted for
compatibility and ignored: concurrency comes from the client's connection pool.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, AbstractSet, Any, Literal

from tokend_api.policy_message import ORDINARY, to_message

from ._chat import ChatCount, ChatEncoding, chat_inputs, count_chat_operation, encode_chat_operation
from ._models import ModelDetails
from ._offsets import text_with_offsets
from ._remote_budgets import RemoteBudgetMethods
from ._operations import (
    Operation,
    bytes_inputs,
    count_operation,
    decode_bytes_operation,
    encode_operation,
    text_inputs,
    token_id_inputs,
)

if TYPE_CHECKING:
    from ._client import TokendClient

AllowedSpecial = Literal["all"] | AbstractSet[str]
DisallowedSpecial = Literal["all"] | Collection[str]


class RemoteEncodingBase:
    """What sync and async remote encodings share: the facts of one exact model version, and the
    operations (request builders) for it. Not for direct use."""

    def __init__(self, details: ModelDetails) -> None:
        self.details = details
        self.name = details.name
        self.version = details.version  # the exact version every call is answered by
        self.max_token_value = details.max_token_value
        self._ref = details.ref  # "name@version": the API pins every call to it
        self._expect = (details.name, details.version)
        self._special_tokens_set = set(details.special_tokens)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} version={self.version}>"

    @property
    def n_vocab(self) -> int:
        return self.details.n_vocab

    @property
    def eot_token(self) -> int | None:
        """The id of `<|endoftext|>`, or None when the model has none (as the tokend engine)."""
        return self.details.eot_token

    @property
    def special_tokens_set(self) -> set[str]:
        return self._special_tokens_set

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """special token → id."""
        return self.details.special_tokens

    @property
    def pattern(self) -> str:
        """The regex that pre-splits text (Python `regex` syntax)."""
        return self.details.pattern

    def is_special_token(self, token: int) -> bool:
        return token in self.details.special_tokens.values()

    def _encode_operation(self, allowed_special: AllowedSpecial, disallowed_special: DisallowedSpecial) -> Operation:
        return encode_operation(self._ref, to_message(allowed_special, disallowed_special), self._expect)

    def _count_operation(self, allowed_special: AllowedSpecial, disallowed_special: DisallowedSpecial) -> Operation:
        return count_operation(self._ref, to_message(allowed_special, disallowed_special), self._expect)

    def _ordinary_operation(self) -> Operation:
        return encode_operation(self._ref, ORDINARY, self._expect)

    def _ordinary_count_operation(self) -> Operation:
        return count_operation(self._ref, ORDINARY, self._expect)

    def _decode_operation(self) -> Operation:
        return decode_bytes_operation(self._ref, self._expect)

    def _encode_chat_operation(self, content_special_tokens: str) -> Operation:
        return encode_chat_operation(self._ref, content_special_tokens, self._expect)

    def _count_chat_operation(self, content_special_tokens: str, per_message: bool) -> Operation:
        return count_chat_operation(self._ref, content_special_tokens, per_message, self._expect)


class RemoteEncoding(RemoteBudgetMethods, RemoteEncodingBase):
    """A tokend model version with `tiktoken.Encoding`'s methods; obtain it from `TokendClient.get_encoding`.

        enc = client.get_encoding("cl100k_base")
        ids = enc.encode("hello world")           # [15339, 1917]
        enc.decode(ids)                           # 'hello world'
        enc.count_batch(["a", "b c"])             # [1, 2]
    """

    def __init__(self, client: TokendClient, details: ModelDetails) -> None:
        super().__init__(details)
        self._client = client

    def _run(self, operation: Operation, prepared: tuple[list, list[int]], *, batch_call: bool) -> list:
        inputs, sizes = prepared
        return self._client._run_batch(operation, inputs, sizes, ref=self._ref, batch_call=batch_call)

    # -- encoding ----------------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006 (tiktoken's signature)
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        """Token ids of `text`; by default any special token in it raises DisallowedSpecialTokenError."""
        operation = self._encode_operation(allowed_special, disallowed_special)
        return self._run(operation, text_inputs([text]), batch_call=False)[0]

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ):
        """`encode` as a numpy uint32 array, as tiktoken's (numpy is imported here: install it to use this)."""
        import numpy

        ids = self.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return numpy.array(ids, dtype=numpy.uint32)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens encoded as ordinary text (never raises for them)."""
        return self._run(self._ordinary_operation(), text_inputs([text]), batch_call=False)[0]

    def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[list[int]]:
        """`encode` of each text, in order; an error names the batch item (`.item`)."""
        operation = self._encode_operation(allowed_special, disallowed_special)
        return self._run(operation, text_inputs(text), batch_call=True)

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        return self._run(self._ordinary_operation(), text_inputs(text), batch_call=True)

    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids of raw bytes (need not be UTF-8), always as ordinary text."""
        return self._run(self._ordinary_operation(), bytes_inputs([data]), batch_call=False)[0]

    # -- counting ----------------------------------------------------------------------------------

    def count(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> int:
        """`len(encode(text, ...))`, without shipping the ids."""
        operation = self._count_operation(allowed_special, disallowed_special)
        return self._run(operation, text_inputs([text]), batch_call=False)[0]

    def count_ordinary(self, text: str) -> int:
        return self._run(self._ordinary_count_operation(), text_inputs([text]), batch_call=False)[0]

    def count_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        operation = self._count_operation(allowed_special, disallowed_special)
        return self._run(operation, text_inputs(texts), batch_call=True)

    # -- decoding ----------------------------------------------------------------------------------

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """The bytes of `tokens`; an unknown id raises UnknownTokenIdError (a KeyError)."""
        return self._run(self._decode_operation(), token_id_inputs([tokens], batch_call=False), batch_call=False)[0]

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """The text of `tokens`; `errors` is any Python codec error handler ("strict" raises UnicodeDecodeError)."""
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        return self.decode_bytes([token])

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        return self.decode_bytes_batch([[token] for token in tokens])

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """The text (strict UTF-8) and, per token, the index of the first character holding its bytes."""
        return text_with_offsets(self.decode_tokens_bytes(tokens))

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        return self._run(self._decode_operation(), token_id_inputs(batch, batch_call=True), batch_call=True)

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        return [data.decode("utf-8", errors=errors) for data in self.decode_bytes_batch(batch)]

    # -- chat (the model version's chat format; docs/chat.md) ----------------------------------------

    def encode_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: str = "reference",
    ) -> ChatEncoding:
        """The prompt ids of OpenAI-shaped `messages` (and function `tools`) in this model's chat format, the
        rendered text and each message's span, as `LoadedModel.encode_chat`. A model without a chat format
        raises ChatFormatNotSetError; a message the format refuses, ChatRequestError naming the field."""
        operation = self._encode_chat_operation(content_special_tokens)
        return self._run(operation, chat_inputs(messages, tools, add_generation_prompt), batch_call=False)[0]

    def count_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: str = "reference",
        per_message: bool = True,
    ) -> ChatCount:
        """`ChatCount(total, per_message, spans_exact, estimate)` of a chat, as `LoadedModel.count_chat`."""
        operation = self._count_chat_operation(content_special_tokens, per_message)
        return self._run(operation, chat_inputs(messages, tools, add_generation_prompt), batch_call=False)[0]
