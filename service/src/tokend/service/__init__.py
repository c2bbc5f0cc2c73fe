"""The service layer: every operation of tokend, written once, as plain Python over the registry and engine.

Front-ends (``tokend.server`` gRPC, ``tokend.playground`` JSON, ``tokend.cli``) translate their wire
format into a :class:`TokenizerService` call and its result or error back; nothing here knows a wire
format. Parts: ``tokenizer`` (the operations), ``models`` (resolution, loading, hot-reload step),
``limits``, ``admission`` (the working memory of a worker's large requests), ``bulk_lane`` (the low-priority
threads that do their work), ``special_policy``, ``batch``
(the loop with deadlines), ``errors`` (the one taxonomy and ``describe``), ``results``, ``call_record`` (facts
for logs and metrics), ``token_sizes``; the token-budget operations in ``budgets`` (with ``budget_streams``,
``budget_results``, ``budget_sizes``); the chat operations in ``chat`` (encode_chat, count_chat).

    from tokend.registry import Registry
    from tokend.service import Limits, ServedModels, TokenizerService

    service = TokenizerService(ServedModels(Registry.open()), Limits())
    service.count("cl100k_base", ["hello world"]).total      # 2
"""

from tokend.service.admission import WorkAdmission, working_bytes
from tokend.service.batch import CallState, run_batch
from tokend.service.bulk_lane import BulkLane
from tokend.service.budget_results import Chunked, EncodedWithOffsets, TextChunk, TokenSpans, Truncated, TruncatedText
from tokend.service.budget_streams import ChunkStream, DecodeSession
from tokend.service.call_record import CallRecord, current_record, recording
from tokend.service.chat import ChatConversation
from tokend.service.errors import (
    BatchItemError,
    CallCancelled,
    DeadlineExpired,
    ErrorKind,
    Failure,
    Hint,
    InvalidRequest,
    RequestError,
    RequestLimitExceeded,
    ServiceUnavailable,
    describe,
    echo,
)
from tokend.service.limits import UNLIMITED, Limits
from tokend.service.models import ServedModels
from tokend.service.results import (
    ChatCounted,
    ChatEncoded,
    ChatFormatDetails,
    Counted,
    Decoded,
    Encoded,
    ModelDetails,
    ModelInfo,
    ModelVersion,
)
from tokend.service.special_policy import DEFAULT_POLICY, ORDINARY_POLICY, SpecialTokenPolicy
from tokend.service.tokenizer import TokenizerService

__all__ = [
    "BatchItemError",
    "BulkLane",
    "CallCancelled",
    "CallRecord",
    "CallState",
    "ChatConversation",
    "ChatCounted",
    "ChatEncoded",
    "ChatFormatDetails",
    "ChunkStream",
    "Chunked",
    "Counted",
    "DEFAULT_POLICY",
    "DeadlineExpired",
    "DecodeSession",
    "Decoded",
    "Encoded",
    "EncodedWithOffsets",
    "ErrorKind",
    "Failure",
    "Hint",
    "InvalidRequest",
    "Limits",
    "ModelDetails",
    "ModelInfo",
    "ModelVersion",
    "ORDINARY_POLICY",
    "RequestError",
    "RequestLimitExceeded",
    "ServedModels",
    "ServiceUnavailable",
    "SpecialTokenPolicy",
    "TextChunk",
    "TokenSpans",
    "TokenizerService",
    "Truncated",
    "TruncatedText",
    "UNLIMITED",
    "WorkAdmission",
    "current_record",
    "describe",
    "echo",
    "recording",
    "working_bytes",
]
