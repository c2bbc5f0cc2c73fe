"""tokend-api: what the tokend server and its clients agree on, in one place.

    from tokend_api import SERVICE_NAME, WORKER_METADATA_KEY, Reason, DEFAULT_MAX_REQUEST_BYTES
    from tokend_api.v1 import tokenizer_pb2 as pb, tokenizer_pb2_grpc

Modules: ``wire`` (service name, metadata keys, ErrorInfo domain and reasons), ``limits`` (default request
limits and their names), ``special_tokens`` (tiktoken's special-token arguments), ``policy_message`` (those
arguments as a ``SpecialTokenPolicy`` message), ``status_details`` (rich error details), ``v1`` (generated
stubs). Importing this package loads neither grpc nor protobuf.
"""

from tokend_api.limits import (
    BYTES_PER_TOKEN_ID,
    CHAT_TEMPLATE_MAX_CHARS,
    CHAT_TEMPLATE_SECONDS,
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_BATCH_ITEMS,
    MAX_CHUNKS,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    MAX_STREAM_ANSWER_BYTES,
    STREAM_ANSWER_MESSAGES,
)
from tokend_api.wire import ERROR_DOMAIN, SERVICE_NAME, STATUS_DETAILS_METADATA_KEY, WORKER_METADATA_KEY, Reason

__all__ = [
    "BYTES_PER_TOKEN_ID",
    "CHAT_TEMPLATE_MAX_CHARS",
    "CHAT_TEMPLATE_SECONDS",
    "DEFAULT_MAX_BATCH_ITEMS",
    "DEFAULT_MAX_CHUNKS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "ERROR_DOMAIN",
    "MAX_BATCH_ITEMS",
    "MAX_CHUNKS",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_STREAM_ANSWER_BYTES",
    "Reason",
    "STREAM_ANSWER_MESSAGES",
    "SERVICE_NAME",
    "STATUS_DETAILS_METADATA_KEY",
    "WORKER_METADATA_KEY",
]
