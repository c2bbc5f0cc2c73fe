"""tokend-client: a Python client for the tokend tokenizer service.

`RemoteEncoding` has `tiktoken.Encoding`'s methods, parameters, results and exception classes, so code
written for tiktoken switches to the shared service by changing how it obtains the Encoding:

    import tokend_client

    with tokend_client.TokendClient("localhost:50051") as client:
        enc = client.get_encoding("cl100k_base")
        assert enc.decode(enc.encode("hello world")) == "hello world"

`AsyncTokendClient` / `AsyncRemoteEncoding` are the asyncio versions. The exception tree is documented in
`tokend_client._exceptions`. This package imports nothing from the `tokend` server distribution.
"""

from ._async_client import AsyncTokendClient
from ._async_remote_encoding import AsyncRemoteEncoding
from ._budget_results import Chunk, TokenOffsets, Truncation
from ._chat import ChatCount, ChatEncoding
from ._client import TokendClient
from ._exceptions import (
    ChatFormatNotSetError,
    ChatRequestError,
    ChatTemplateError,
    DeadlineExceededError,
    DisallowedSpecialTokenError,
    InvalidArgumentError,
    InvalidBudgetError,
    LimitExceededError,
    ModelNotFoundError,
    OffsetsUnavailableError,
    ProtocolError,
    RemoteError,
    ServiceUnavailableError,
    TokendError,
    UnknownTokenIdError,
)
from ._models import ChatFormatDetails, ModelDetails, ModelSummary
from ._remote_encoding import RemoteEncoding

__all__ = [
    "AsyncRemoteEncoding",
    "AsyncTokendClient",
    "ChatCount",
    "ChatEncoding",
    "ChatFormatDetails",
    "ChatFormatNotSetError",
    "ChatRequestError",
    "ChatTemplateError",
    "Chunk",
    "DeadlineExceededError",
    "DisallowedSpecialTokenError",
    "InvalidArgumentError",
    "InvalidBudgetError",
    "LimitExceededError",
    "ModelDetails",
    "ModelNotFoundError",
    "ModelSummary",
    "OffsetsUnavailableError",
    "ProtocolError",
    "RemoteEncoding",
    "RemoteError",
    "ServiceUnavailableError",
    "TokendClient",
    "TokenOffsets",
    "TokendError",
    "Truncation",
    "UnknownTokenIdError",
]
