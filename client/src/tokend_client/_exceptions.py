"""The exceptions `tokend_client` raises: one tree, the same class names as the `tokend` engine.

Code written against `tiktoken` (or the in-process `tokend.Encoding`) keeps its error handling when it
switches to a `RemoteEncoding`: a disallowed special token is still a `ValueError`, an unknown token id
still a `KeyError`, and `errors="strict"` decoding still raises Python's own `UnicodeDecodeError`
(the client decodes the bytes itself, exactly as tiktoken does). Every gRPC status the service can
return becomes one class below; the original `grpc.RpcError` is kept as `__cause__`.

```
TokendError(Exception)                                     .code (grpc.StatusCode or None) .status_message
├── DisallowedSpecialTokenError(TokendError, ValueError)   .token .offset (characters) .item (batch index or None)
├── UnknownTokenIdError(TokendError, KeyError)             .token_id .item
├── ModelNotFoundError(TokendError, ValueError)            .ref .available (what the server has)
├── InvalidBudgetError(TokendError, ValueError)            truncate/chunk argument out of range or unmeetable; .argument .item
├── OffsetsUnavailableError(TokendError, ValueError)       the model's tokens do not spell the text; .model .position .item
├── InvalidArgumentError(TokendError, ValueError)          any other INVALID_ARGUMENT; .field_violations
│   └── ChatRequestError(InvalidArgumentError)             a chat the model's format refuses; .field .message_index
│       └── ChatTemplateError(ChatRequestError)            a chat template raised, failed or hit a limit; .reason
├── ChatFormatNotSetError(TokendError, ValueError)         the model version has no chat format; .ref
├── LimitExceededError(TokendError)                        over a limit splitting cannot fix; .item .limit
├── ServiceUnavailableError(TokendError, ConnectionError)  UNAVAILABLE after retries (not ready, draining, down)
├── DeadlineExceededError(TokendError, TimeoutError)       the call's deadline expired
├── ProtocolError(TokendError)                             a response breaking the API contract (item count)
└── RemoteError(TokendError)                               any other status (INTERNAL, UNAUTHENTICATED…)
```

Not mirrored: the engine's `ModelFormatError`, `ChecksumMismatchError`, `VersionConflictError` and
`RegistryError` describe files and publishing on the server. Over the API they arrive as statuses:
a broken model version as FAILED_PRECONDITION (raised here as `RemoteError`), an unreachable registry
as UNAVAILABLE (`ServiceUnavailableError`); the client never sees the files, so it has no classes for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc is a dependency, but the tree itself needs nothing from it at run time
    import grpc


class TokendError(Exception):
    """Base of every error `tokend_client` raises.

    `code` is the gRPC status code that produced it (None for errors found before any call was made)
    and `status_message` the server's message, verbatim.

        try:
            enc.encode(text)
        except tokend_client.TokendError as error:
            log.warning("tokend said %s: %s", error.code, error)
    """

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, status_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status_message = status_message if status_message is not None else message

    def __str__(self) -> str:
        # KeyError's __str__ quotes its argument; every class in the tree prints its message plainly.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors do not survive Exception's default pickling (cls(*args)); rebuild
        # from the attributes instead, so errors cross process pools and test runners intact.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[TokendError], args: tuple[object, ...], state: dict[str, object]) -> TokendError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DisallowedSpecialTokenError(TokendError, ValueError):
    """The text contains a special token the call did not allow (tiktoken raises `ValueError`).

    `token` is the special token, `offset` its character offset in the text, `item` the index of the
    text in the batch (None for a single-text call). Either allow it (`allowed_special={token}` or
    `"all"`) or encode it as ordinary text (`disallowed_special=()`).
    """

    def __init__(
        self,
        token: str,
        *,
        offset: int | None = None,
        item: int | None = None,
        message: str | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        where = "" if offset is None else f" at character {offset}"
        if item is not None:
            where += f" of item {item}"
        super().__init__(
            message
            or (
                f"Encountered text corresponding to disallowed special token {token!r}{where}.\n"
                "If you want this text to be encoded as a special token, "
                f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
                "If you want this text to be encoded as normal text, disable the check for this token "
                f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
                "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
            ),
            code=code,
            status_message=status_message,
        )
        self.token = token
        self.offset = offset
        self.item = item


class UnknownTokenIdError(TokendError, KeyError):
    """A token id the model does not have was given to decode (tiktoken raises `KeyError`).

    `token_id` is the id, `item` the index of the id list in the batch (None for a single list).
    Valid ids are `0 <= id <= enc.max_token_value`, and not every id below it need exist.
    """

    def __init__(
        self,
        token_id: int | None,
        *,
        item: int | None = None,
        message: str | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        where = "" if item is None else f" in item {item}"
        super().__init__(
            message or f"Invalid token for decoding: {token_id}{where}; the model has no such token id",
            code=code,
            status_message=status_message,
        )
        self.token_id = token_id
        self.item = item


class ModelNotFoundError(TokendError, ValueError):
    """The server has no model, version or alias by that reference; `available` lists what it has.

    `ref` is the reference as given (`"name"`, `"name@7"`, `"name@alias"`).
    """

    def __init__(
        self,
        ref: str,
        *,
        available: Sequence[str] = (),
        message: str | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        listing = ", ".join(available) if available else "(the server did not list them)"
        super().__init__(
            message or f"Unknown model {ref!r}; the server has: {listing}. Use one of those references.",
            code=code,
            status_message=status_message,
        )
        self.ref = ref
        self.available = list(available)


class InvalidBudgetError(TokendError, ValueError):
    """A token-budget argument (`truncate`, `chunk`) out of range, or a budget no cut of the text can meet
    (the engine's `InvalidBudgetError`). `argument` names the parameter to change ("max_tokens", "side",
    "overlap", "prefer", "max_chunks"); `item` is the batch index of the text it is about (None for a
    single-text call or an argument that is wrong for every text).
    """

    def __init__(
        self,
        argument: str,
        message: str,
        *,
        item: int | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_message=status_message)
        self.argument = argument
        self.item = item


class OffsetsUnavailableError(TokendError, ValueError):
    """The model's tokens do not spell the text (its normalizer rewrites text), so they have no offsets, cut
    points or chunks in it (the engine's `OffsetsUnavailableError`, FAILED_PRECONDITION over the API).
    `position` is the first character of the text where they differ.
    """

    def __init__(
        self,
        model: str,
        position: int | None,
        *,
        item: int | None = None,
        message: str | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(
            message or f"model {model!r} rewrites the text it encodes (from character {position} on), so its tokens "
            "have no offsets, cut points or chunks in it; use a model without text normalization",
            code=code,
            status_message=status_message,
        )
        self.model = model
        self.position = position
        self.item = item


class InvalidArgumentError(TokendError, ValueError):
    """The server rejected the request as malformed for a reason without a more precise class.

    `field_violations` is a list of `(field, description)` pairs from the server's `BadRequest`.
    """

    def __init__(
        self,
        message: str,
        *,
        field_violations: Sequence[tuple[str, str]] = (),
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_message=status_message)
        self.field_violations = list(field_violations)


class LimitExceededError(TokendError):
    """A request is over a server limit and splitting the batch cannot bring it under.

    This happens when a single item alone is larger than the bytes-per-request limit (a text cannot be
    split without changing its tokens). `item` is its batch index (None when not known), `limit` the
    limit in bytes when known. Split the text yourself at a natural boundary or raise the server's
    `--max-request-bytes` / `--max-message-bytes`.
    """

    def __init__(
        self,
        message: str,
        *,
        item: int | None = None,
        limit: int | None = None,
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_message=status_message)
        self.item = item
        self.limit = limit


class ServiceUnavailableError(TokendError, ConnectionError):
    """No server answered: not ready yet, draining, or unreachable — after the configured retries."""


class DeadlineExceededError(TokendError, TimeoutError):
    """The call's deadline (`timeout=`) expired before the answer arrived; the server stopped its work."""


class ProtocolError(TokendError):
    """The server's response breaks the API contract (e.g. a result count that differs from the inputs)."""


class RemoteError(TokendError):
    """Any other gRPC status: INTERNAL (a server bug), UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED…"""


class ChatRequestError(InvalidArgumentError):
    """Chat messages or tools the model's chat format cannot render (the engine's class of the same name).

    `field` is the path inside the call's arguments, e.g. "messages[2].tool_calls[0].function.name" (or
    "tools[0]"), `message_index` the index in `messages` (None when the problem is not one message); the
    text is the same as a local `LoadedModel.encode_chat` gives.
    """

    def __init__(
        self,
        problem: str,
        *,
        field: str | None = None,
        message_index: int | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
        code: grpc.StatusCode | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(
            f"{field}: {problem}" if field else problem, field_violations=field_violations, code=code,
            status_message=status_message,
        )  # fmt: skip
        self.problem = problem
        self.field = field
        self.message_index = message_index


class ChatTemplateError(ChatRequestError):
    """The model's chat template refused the conversation, failed, or ran past its time or size limit.

    `reason`: "raised", "failed", "security", "time_limit" or "size_limit" (the last two arrive as
    RESOURCE_EXHAUSTED; the batch is not split for them: a smaller request does not help).
    """

    def __init__(self, problem: str, *, reason: str, **keys: object) -> None:
        super().__init__(problem, **keys)  # type: ignore[arg-type]
        self.reason = reason


class ChatFormatNotSetError(TokendError, ValueError):
    """`encode_chat` / `count_chat` on a model version without a chat format (FAILED_PRECONDITION).

    `ref` is the exact version; use a model with one, or publish a version with one on the server
    (`tokend registry chat-format REF --chat-format NAME`).
    """

    def __init__(
        self, ref: str, *, message: str | None = None, code: grpc.StatusCode | None = None, status_message: str | None = None
    ) -> None:
        super().__init__(message or f"model {ref} has no chat format", code=code, status_message=status_message)
        self.ref = ref
