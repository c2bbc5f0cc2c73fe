"""`AsyncRemoteEncoding`: `RemoteEncoding` for asyncio — the same methods, awaited.

    async with AsyncTokendClient("localhost:50051") as client:
        enc = await client.get_encoding("cl100k_base")
        ids = await enc.encode("hello world")          # [15339, 1917]
        text = await enc.decode(ids)

Properties (`name`, `version`, `n_vocab`, `eot_token`, `special_tokens_set`, `max_token_value`) are plain
attributes, as on `RemoteEncoding`; every method that talks to the server is a coroutine. Parameters,
defaults, results and exceptions are those of `RemoteEncoding` (and so of tiktoken).

Token budgets (`_async_remote_budgets`): the same methods, awaited; `iter_chunks` returns an async iterator.

Not handled: the same as `RemoteEncoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._async_remote_budgets import AsyncRemoteBudgetMethods
from ._chat import ChatCount, ChatEncoding, chat_inputs
from ._models import ModelDetails
from ._offsets import text_with_offsets
from ._operations import Operation, bytes_inputs, text_inputs, token_id_inputs
from ._remote_encoding import AllowedSpecial, DisallowedSpecial, RemoteEncodingBase

if TYPE_CHECKING:
    from ._async_client import AsyncTokendClient


class AsyncRemoteEncoding(AsyncRemoteBudgetMethods, RemoteEncodingBase):
    """A tokend model version with `tiktoken.Encoding`'s methods as coroutines."""

    def __init__(self, client: AsyncTokendClient, details: ModelDetails) -> None:
        super().__init__(details)
        self._client = client

    async def _run(self, operation: Operation, prepared: tuple[list, list[int]], *, batch_call: bool) -> list:
        inputs, sizes = prepared
        return await self._client._run_batch(operation, inputs, sizes, ref=self._ref, batch_call=batch_call)

    async def encode(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006 (tiktoken's signature)
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        operation = self._encode_operation(allowed_special, disallowed_special)
        return (await self._run(operation, text_inputs([text]), batch_call=False))[0]

    async def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ):
        """`encode` as a numpy uint32 array (numpy is imported here: install it to use this)."""
        import numpy

        ids = await self.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return numpy.array(ids, dtype=numpy.uint32)

    async def encode_ordinary(self, text: str) -> list[int]:
        return (await self._run(self._ordinary_operation(), text_inputs([text]), batch_call=False))[0]

    async def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[list[int]]:
        operation = self._encode_operation(allowed_special, disallowed_special)
        return await self._run(operation, text_inputs(text), batch_call=True)

    async def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        return await self._run(self._ordinary_operation(), text_inputs(text), batch_call=True)

    async def encode_bytes(self, data: bytes) -> list[int]:
        return (await self._run(self._ordinary_operation(), bytes_inputs([data]), batch_call=False))[0]

    async def count(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> int:
        operation = self._count_operation(allowed_special, disallowed_special)
        return (await self._run(operation, text_inputs([text]), batch_call=False))[0]

    async def count_ordinary(self, text: str) -> int:
        return (await self._run(self._ordinary_count_operation(), text_inputs([text]), batch_call=False))[0]

    async def count_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: AllowedSpecial = set(),  # noqa: B006
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        operation = self._count_operation(allowed_special, disallowed_special)
        return await self._run(operation, text_inputs(texts), batch_call=True)

    async def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        prepared = token_id_inputs([tokens], batch_call=False)
        return (await self._run(self._decode_operation(), prepared, batch_call=False))[0]

    async def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        return (await self.decode_bytes(tokens)).decode("utf-8", errors=errors)

    async def decode_single_token_bytes(self, token: int) -> bytes:
        return await self.decode_bytes([token])

    async def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        return await self.decode_bytes_batch([[token] for token in tokens])

    async def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """The text (strict UTF-8) and, per token, the index of the first character holding its bytes."""
        return text_with_offsets(await self.decode_tokens_bytes(tokens))

    async def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        return await self._run(self._decode_operation(), token_id_inputs(batch, batch_call=True), batch_call=True)

    async def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        return [data.decode("utf-8", errors=errors) for data in await self.decode_bytes_batch(batch)]

    async def encode_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: str = "reference",
    ) -> ChatEncoding:
        """`RemoteEncoding.encode_chat`, awaited."""
        operation = self._encode_chat_operation(content_special_tokens)
        return (await self._run(operation, chat_inputs(messages, tools, add_generation_prompt), batch_call=False))[0]

    async def count_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: str = "reference",
        per_message: bool = True,
    ) -> ChatCount:
        """`RemoteEncoding.count_chat`, awaited."""
        operation = self._count_chat_operation(content_special_tokens, per_message)
        return (await self._run(operation, chat_inputs(messages, tools, add_generation_prompt), batch_call=False))[0]
