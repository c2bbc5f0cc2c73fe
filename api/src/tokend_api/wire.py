"""Names that travel on the wire between a tokend server and its clients (a stable contract).

``Reason`` is the ``google.rpc.ErrorInfo.reason`` of an error (domain ``ERROR_DOMAIN``); its metadata keys,
all string values:

| reason                           | metadata                                   |
|----------------------------------|--------------------------------------------|
| DISALLOWED_SPECIAL_TOKEN_ERROR   | token, offset (characters), item           |
| UNKNOWN_TOKEN_ID_ERROR           | token_id, item                             |
| UNICODE_DECODE_ERROR             | offset (bytes), item                       |
| MODEL_NOT_FOUND_ERROR            | ref, available (comma-separated)           |
| REQUEST_LIMIT_EXCEEDED           | limit_name, limit, actual                  |
| INVALID_REQUEST                  | field                                      |
| INVALID_BUDGET_ERROR             | argument, item                             |
| OFFSETS_UNAVAILABLE_ERROR        | model, position (characters), item         |
| CHAT_REQUEST_ERROR               | field (in the conversation), message_index, item |
| CHAT_TEMPLATE_ERROR              | template_failure (raised, failed, security, time_limit, size_limit), limit_name, item |
| CHAT_FORMAT_NOT_SET_ERROR        | ref                                        |

``item`` (the batch index) is absent when the error is not about one item. Echoed input (``token``,
``ref``) is cut to a bounded prefix by the server.

    >>> Reason.MODEL_NOT_FOUND_ERROR == "MODEL_NOT_FOUND_ERROR"
    True
"""

from __future__ import annotations

import enum

__all__ = ["SERVICE_NAME", "WORKER_METADATA_KEY", "STATUS_DETAILS_METADATA_KEY", "ERROR_DOMAIN", "Reason"]

# The fully qualified gRPC service (protos/tokend/v1/tokenizer.proto), also its health-check name.
SERVICE_NAME = "tokend.v1.Tokenizer"
# Initial metadata on every response: the pid of the worker process that answered.
WORKER_METADATA_KEY = "tokend-worker"
# The trailer that carries the serialized google.rpc.Status (gRPC's convention).
STATUS_DETAILS_METADATA_KEY = "grpc-status-details-bin"
# google.rpc.ErrorInfo.domain of every tokend error.
ERROR_DOMAIN = "tokend.dev"


class Reason(enum.StrEnum):
    """``google.rpc.ErrorInfo.reason`` values (metadata keys in the module docstring)."""

    DISALLOWED_SPECIAL_TOKEN_ERROR = "DISALLOWED_SPECIAL_TOKEN_ERROR"
    UNKNOWN_TOKEN_ID_ERROR = "UNKNOWN_TOKEN_ID_ERROR"
    UNICODE_DECODE_ERROR = "UNICODE_DECODE_ERROR"
    MODEL_NOT_FOUND_ERROR = "MODEL_NOT_FOUND_ERROR"
    REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
    INVALID_REQUEST = "INVALID_REQUEST"
    # Token budgets (Truncate, Chunk, Encode with offsets): a budget argument no cut can meet or out of range
    # (INVALID_ARGUMENT), a model whose tokens do not spell the text (FAILED_PRECONDITION).
    INVALID_BUDGET_ERROR = "INVALID_BUDGET_ERROR"
    OFFSETS_UNAVAILABLE_ERROR = "OFFSETS_UNAVAILABLE_ERROR"
    # Chats (EncodeChat, CountChatTokens): a message or tool the format refuses, a template that fails or hits
    # its limit (INVALID_ARGUMENT / RESOURCE_EXHAUSTED), a model version without a chat format (FAILED_PRECONDITION).
    CHAT_REQUEST_ERROR = "CHAT_REQUEST_ERROR"
    CHAT_TEMPLATE_ERROR = "CHAT_TEMPLATE_ERROR"
    CHAT_FORMAT_NOT_SET_ERROR = "CHAT_FORMAT_NOT_SET_ERROR"
