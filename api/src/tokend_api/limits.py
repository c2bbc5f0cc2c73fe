"""The per-request limits a tokend server enforces by default, and the names errors give them.

A server refuses a request over a limit with RESOURCE_EXHAUSTED naming the limit (``ErrorInfo``
``limit_name``/``limit``); a client splits batches to stay under these defaults until a server names a
smaller one. Operators change them with ``--max-batch-items`` / ``--max-request-bytes`` /
``--max-message-bytes`` (``TOKEND_*`` variables of the same names).

    >>> DEFAULT_MAX_REQUEST_BYTES // BYTES_PER_TOKEN_ID   # token ids one Decode request may carry
    2097152
"""

from __future__ import annotations

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_REQUEST_BYTES",
    "MAX_MESSAGE_BYTES",
    "CHAT_TEMPLATE_SECONDS",
    "CHAT_TEMPLATE_MAX_CHARS",
    "DEFAULT_MAX_BATCH_ITEMS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "BYTES_PER_TOKEN_ID",
    "MAX_CHUNKS",
    "DEFAULT_MAX_CHUNKS",
    "MAX_STREAM_ANSWER_BYTES",
    "STREAM_ANSWER_MESSAGES",
]

# Limit names, as errors report them (ErrorInfo limit_name; QuotaFailure subject).
MAX_BATCH_ITEMS = "max_batch_items"  # inputs per request
MAX_REQUEST_BYTES = "max_request_bytes"  # input bytes per request (text, data, listed special tokens, ids)
MAX_MESSAGE_BYTES = "max_message_bytes"  # one gRPC message, request or response
CHAT_TEMPLATE_SECONDS = "chat_template_seconds"  # a chat template's time for one conversation
CHAT_TEMPLATE_MAX_CHARS = "chat_template_max_chars"  # the text a chat template may build

DEFAULT_MAX_BATCH_ITEMS = 1024
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# What one token id of a Decode request counts against max_request_bytes (ids travel as uint32).
BYTES_PER_TOKEN_ID = 4
# Chunks one Chunk / ChunkStream request may make (over all its inputs): a chunk costs ~3 us of engine time and
# ~7 us of a worker's CPU with its answer (one-token chunks through `tokend serve`, loaded; ~15-20 us before
# chunk_plan.c), so a call is at most ~0.7 s, and a tiny budget over 8 MiB of text (millions of chunks) is
# refused instead of computed.
MAX_CHUNKS = "max_chunks"
DEFAULT_MAX_CHUNKS = 100_000
# The whole answer of one ChunkStream: STREAM_ANSWER_MESSAGES answer limits (max_message_bytes; 64 MiB by
# default), each id counted at the size of its model's largest id. Room for a chunking without overlap of any
# text max_request_bytes admits (8 MiB: at most ~8 M ids, ~24 MiB) overlapped by half; past it, a stream's
# overlap multiplies the answer (overlap = max_tokens - 1 repeats every token max_tokens times).
MAX_STREAM_ANSWER_BYTES = "max_stream_answer_bytes"
STREAM_ANSWER_MESSAGES = 4
