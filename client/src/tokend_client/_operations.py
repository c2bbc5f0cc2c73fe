"""The batched RPCs (Encode, CountTokens, Decode; the budget ones are in `_budget_operations`) as data: how to build one request from a slice of
the caller's batch, how to read that request's answers, and how big each item is for the request limits.

Sync and async clients share these; they differ only in how they send requests.

Sizes are counted the way the server counts them (service/src/tokend/server/servicer.py): UTF-8 bytes of
a text, length of raw bytes, 4 bytes per token id.

Text that Python can hold but UTF-8 cannot (lone surrogates such as "\\ud800") is repaired exactly as
tiktoken repairs it before encoding — through UTF-16 with errors="replace" — so the same ids come back.

    operation = encode_operation(model, policy)
    request = operation.request(inputs[0:100])
    ids_lists = operation.results(stub.Encode(request), expected_items=100)

Not handled: the streamed RPCs (see `_remote_budgets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tokend_api.v1 import tokenizer_pb2 as pb

from ._exceptions import ProtocolError, UnknownTokenIdError

_MAX_TOKEN_ID = 2**32 - 1  # ids are uint32 on the wire


@dataclass(frozen=True)
class Operation:
    """One batched RPC: the stub method's name, a request builder and a response reader."""

    method: str
    request: Callable[[Sequence[Any]], Any]
    read: Callable[[Any], Sequence[Any]]
    expect_version: tuple[str, int] | None

    def results(self, response: Any, *, expected_items: int) -> Sequence[Any]:
        """The answers of one response, checked against the contract (one per input, the pinned version)."""
        values = self.read(response)
        if len(values) != expected_items:
            raise ProtocolError(
                f"{self.method} returned {len(values)} results for {expected_items} inputs; the server is broken"
            )
        if self.expect_version is not None:
            answered = (response.model.name, response.model.version)
            if answered != self.expect_version:
                raise ProtocolError(
                    f"{self.method} was answered by {answered[0]}@{answered[1]}, not the requested "
                    f"{self.expect_version[0]}@{self.expect_version[1]}; the server is broken"
                )
        return values


def utf8_text(text: str) -> tuple[str, int]:
    """`text` safe for the wire (tiktoken's surrogate repair) and its UTF-8 size in bytes."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str to encode, got {type(text).__name__}; use encode_bytes() for bytes")
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return repaired, len(repaired.encode("utf-8"))


def text_inputs(texts: Sequence[str]) -> tuple[list[pb.Input], list[int]]:
    """Input messages for a batch of texts, and the size of each."""
    inputs, sizes = [], []
    for text in texts:
        safe, size = utf8_text(text)
        inputs.append(pb.Input(text=safe))
        sizes.append(size)
    return inputs, sizes


def bytes_inputs(items: Sequence[bytes]) -> tuple[list[pb.Input], list[int]]:
    """Input messages for raw bytes (always encoded as ordinary text), and the size of each."""
    inputs = []
    for data in items:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(data).__name__}; use encode() for str")
        inputs.append(pb.Input(data=bytes(data)))
    return inputs, [len(item.data) for item in inputs]


def token_id_inputs(batch: Sequence[Sequence[int]], *, batch_call: bool) -> tuple[list[pb.TokenIds], list[int]]:
    """TokenIds messages for a batch of id lists, and the size of each (4 bytes per id).

    An id that cannot exist (negative, or over uint32) raises UnknownTokenIdError here, naming it.
    """
    inputs = []
    for index, tokens in enumerate(batch):
        ids = list(tokens)
        for token in ids:
            if not 0 <= token <= _MAX_TOKEN_ID:
                raise UnknownTokenIdError(token, item=index if batch_call else None)
        inputs.append(pb.TokenIds(ids=ids))
    return inputs, [4 * len(item.ids) for item in inputs]


def encode_operation(model: str, policy: pb.SpecialTokenPolicy, expect: tuple[str, int] | None) -> Operation:
    return Operation(
        "Encode",
        lambda inputs: pb.EncodeRequest(model=model, inputs=inputs, special_tokens=policy),
        lambda response: [list(result.ids) for result in response.results],
        expect,
    )


def count_operation(model: str, policy: pb.SpecialTokenPolicy, expect: tuple[str, int] | None) -> Operation:
    return Operation(
        "CountTokens",
        lambda inputs: pb.CountTokensRequest(model=model, inputs=inputs, special_tokens=policy),
        lambda response: list(response.counts),
        expect,
    )


def decode_bytes_operation(model: str, expect: tuple[str, int] | None) -> Operation:
    # Always bytes: the client applies `errors=` itself, so every Python error handler works and
    # errors="strict" raises Python's own UnicodeDecodeError with tiktoken's exact positions.
    return Operation(
        "Decode",
        lambda inputs: pb.DecodeRequest(model=model, inputs=inputs, output=pb.DecodeRequest.OUTPUT_BYTES),
        lambda response: [result.data for result in response.results],
        expect,
    )
