from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContentSpecialTokens(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTENT_SPECIAL_TOKENS_UNSPECIFIED: _ClassVar[ContentSpecialTokens]
    CONTENT_SPECIAL_TOKENS_REFERENCE: _ClassVar[ContentSpecialTokens]
    CONTENT_SPECIAL_TOKENS_TEXT: _ClassVar[ContentSpecialTokens]
    CONTENT_SPECIAL_TOKENS_REFUSE: _ClassVar[ContentSpecialTokens]
CONTENT_SPECIAL_TOKENS_UNSPECIFIED: ContentSpecialTokens
CONTENT_SPECIAL_TOKENS_REFERENCE: ContentSpecialTokens
CONTENT_SPECIAL_TOKENS_TEXT: ContentSpecialTokens
CONTENT_SPECIAL_TOKENS_REFUSE: ContentSpecialTokens

class Input(_message.Message):
    __slots__ = ("text", "data")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: bytes
    def __init__(self, text: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class SpecialTokenSet(_message.Message):
    __slots__ = ("mode", "tokens")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[SpecialTokenSet.Mode]
        MODE_NONE: _ClassVar[SpecialTokenSet.Mode]
        MODE_ALL: _ClassVar[SpecialTokenSet.Mode]
        MODE_LISTED: _ClassVar[SpecialTokenSet.Mode]
    MODE_UNSPECIFIED: SpecialTokenSet.Mode
    MODE_NONE: SpecialTokenSet.Mode
    MODE_ALL: SpecialTokenSet.Mode
    MODE_LISTED: SpecialTokenSet.Mode
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    mode: SpecialTokenSet.Mode
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mode: _Optional[_Union[SpecialTokenSet.Mode, str]] = ..., tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class SpecialTokenPolicy(_message.Message):
    __slots__ = ("allowed", "disallowed")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DISALLOWED_FIELD_NUMBER: _ClassVar[int]
    allowed: SpecialTokenSet
    disallowed: SpecialTokenSet
    def __init__(self, allowed: _Optional[_Union[SpecialTokenSet, _Mapping]] = ..., disallowed: _Optional[_Union[SpecialTokenSet, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class TokenIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("model", "inputs", "special_tokens", "offsets", "token_bytes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BYTES_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    special_tokens: SpecialTokenPolicy
    offsets: bool
    token_bytes: bool
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ..., special_tokens: _Optional[_Union[SpecialTokenPolicy, _Mapping]] = ..., offsets: _Optional[bool] = ..., token_bytes: _Optional[bool] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("model", "results", "total_tokens", "offsets")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[TokenIds]
    total_tokens: int
    offsets: _containers.RepeatedCompositeFieldContainer[TokenOffsets]
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TokenIds, _Mapping]]] = ..., total_tokens: _Optional[int] = ..., offsets: _Optional[_Iterable[_Union[TokenOffsets, _Mapping]]] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("model", "inputs", "errors", "output")
    class Errors(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ERRORS_UNSPECIFIED: _ClassVar[DecodeRequest.Errors]
        ERRORS_REPLACE: _ClassVar[DecodeRequest.Errors]
        ERRORS_STRICT: _ClassVar[DecodeRequest.Errors]
    ERRORS_UNSPECIFIED: DecodeRequest.Errors
    ERRORS_REPLACE: DecodeRequest.Errors
    ERRORS_STRICT: DecodeRequest.Errors
    class Output(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTPUT_UNSPECIFIED: _ClassVar[DecodeRequest.Output]
        OUTPUT_TEXT: _ClassVar[DecodeRequest.Output]
        OUTPUT_BYTES: _ClassVar[DecodeRequest.Output]
    OUTPUT_UNSPECIFIED: DecodeRequest.Output
    OUTPUT_TEXT: DecodeRequest.Output
    OUTPUT_BYTES: DecodeRequest.Output
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[TokenIds]
    errors: DecodeRequest.Errors
    output: DecodeRequest.Output
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TokenIds, _Mapping]]] = ..., errors: _Optional[_Union[DecodeRequest.Errors, str]] = ..., output: _Optional[_Union[DecodeRequest.Output, str]] = ...) -> None: ...

class DecodeResult(_message.Message):
    __slots__ = ("text", "data")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: bytes
    def __init__(self, text: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class DecodeResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[DecodeResult]
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[DecodeResult, _Mapping]]] = ...) -> None: ...

class CountTokensRequest(_message.Message):
    __slots__ = ("model", "inputs", "special_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    special_tokens: SpecialTokenPolicy
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ..., special_tokens: _Optional[_Union[SpecialTokenPolicy, _Mapping]] = ...) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("model", "counts", "total")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    counts: _containers.RepeatedScalarFieldContainer[int]
    total: int
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., counts: _Optional[_Iterable[int]] = ..., total: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "versions", "latest_version", "aliases")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    latest_version: int
    aliases: _containers.ScalarMap[str, int]
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ..., latest_version: _Optional[int] = ..., aliases: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ModelDetails(_message.Message):
    __slots__ = ("model", "n_vocab", "max_token_value", "special_tokens", "pattern", "payload_format", "sha256", "description", "created_at", "aliases", "eot_token", "chat_format", "algorithm", "bos_token", "eos_token", "unk_token", "pad_token", "normalizer")
    class SpecialTokensEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    N_VOCAB_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKEN_VALUE_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    EOT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    BOS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NORMALIZER_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    n_vocab: int
    max_token_value: int
    special_tokens: _containers.ScalarMap[str, int]
    pattern: str
    payload_format: str
    sha256: str
    description: str
    created_at: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    eot_token: int
    chat_format: ChatFormatDetails
    algorithm: str
    bos_token: ModelToken
    eos_token: ModelToken
    unk_token: ModelToken
    pad_token: ModelToken
    normalizer: str
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., n_vocab: _Optional[int] = ..., max_token_value: _Optional[int] = ..., special_tokens: _Optional[_Mapping[str, int]] = ..., pattern: _Optional[str] = ..., payload_format: _Optional[str] = ..., sha256: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., eot_token: _Optional[int] = ..., chat_format: _Optional[_Union[ChatFormatDetails, _Mapping]] = ..., algorithm: _Optional[str] = ..., bos_token: _Optional[_Union[ModelToken, _Mapping]] = ..., eos_token: _Optional[_Union[ModelToken, _Mapping]] = ..., unk_token: _Optional[_Union[ModelToken, _Mapping]] = ..., pad_token: _Optional[_Union[ModelToken, _Mapping]] = ..., normalizer: _Optional[str] = ...) -> None: ...

class ChatFormatDetails(_message.Message):
    __slots__ = ("name", "kind", "estimate", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    estimate: bool
    description: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., estimate: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class ModelToken(_message.Message):
    __slots__ = ("text", "id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    id: int
    def __init__(self, text: _Optional[str] = ..., id: _Optional[int] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("details",)
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    details: ModelDetails
    def __init__(self, details: _Optional[_Union[ModelDetails, _Mapping]] = ...) -> None: ...

class TokenOffsets(_message.Message):
    __slots__ = ("starts", "ends", "byte_starts", "byte_ends", "token_bytes")
    STARTS_FIELD_NUMBER: _ClassVar[int]
    ENDS_FIELD_NUMBER: _ClassVar[int]
    BYTE_STARTS_FIELD_NUMBER: _ClassVar[int]
    BYTE_ENDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BYTES_FIELD_NUMBER: _ClassVar[int]
    starts: _containers.RepeatedScalarFieldContainer[int]
    ends: _containers.RepeatedScalarFieldContainer[int]
    byte_starts: _containers.RepeatedScalarFieldContainer[int]
    byte_ends: _containers.RepeatedScalarFieldContainer[int]
    token_bytes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, starts: _Optional[_Iterable[int]] = ..., ends: _Optional[_Iterable[int]] = ..., byte_starts: _Optional[_Iterable[int]] = ..., byte_ends: _Optional[_Iterable[int]] = ..., token_bytes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TruncateRequest(_message.Message):
    __slots__ = ("model", "inputs", "max_tokens", "side", "special_tokens")
    class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SIDE_UNSPECIFIED: _ClassVar[TruncateRequest.Side]
        SIDE_RIGHT: _ClassVar[TruncateRequest.Side]
        SIDE_LEFT: _ClassVar[TruncateRequest.Side]
    SIDE_UNSPECIFIED: TruncateRequest.Side
    SIDE_RIGHT: TruncateRequest.Side
    SIDE_LEFT: TruncateRequest.Side
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    max_tokens: int
    side: TruncateRequest.Side
    special_tokens: SpecialTokenPolicy
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., side: _Optional[_Union[TruncateRequest.Side, str]] = ..., special_tokens: _Optional[_Union[SpecialTokenPolicy, _Mapping]] = ...) -> None: ...

class Truncation(_message.Message):
    __slots__ = ("ids", "start", "end", "byte_start", "byte_end", "total_tokens")
    IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    BYTE_START_FIELD_NUMBER: _ClassVar[int]
    BYTE_END_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    start: int
    end: int
    byte_start: int
    byte_end: int
    total_tokens: int
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., byte_start: _Optional[int] = ..., byte_end: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class TruncateResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[Truncation]
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[Truncation, _Mapping]]] = ...) -> None: ...

class ChunkRequest(_message.Message):
    __slots__ = ("model", "inputs", "max_tokens", "overlap", "prefer", "special_tokens", "max_chunks")
    class Prefer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PREFER_UNSPECIFIED: _ClassVar[ChunkRequest.Prefer]
        PREFER_PARAGRAPH: _ClassVar[ChunkRequest.Prefer]
        PREFER_SENTENCE: _ClassVar[ChunkRequest.Prefer]
        PREFER_WHITESPACE: _ClassVar[ChunkRequest.Prefer]
        PREFER_TOKEN: _ClassVar[ChunkRequest.Prefer]
    PREFER_UNSPECIFIED: ChunkRequest.Prefer
    PREFER_PARAGRAPH: ChunkRequest.Prefer
    PREFER_SENTENCE: ChunkRequest.Prefer
    PREFER_WHITESPACE: ChunkRequest.Prefer
    PREFER_TOKEN: ChunkRequest.Prefer
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    PREFER_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    max_tokens: int
    overlap: int
    prefer: ChunkRequest.Prefer
    special_tokens: SpecialTokenPolicy
    max_chunks: int
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., overlap: _Optional[int] = ..., prefer: _Optional[_Union[ChunkRequest.Prefer, str]] = ..., special_tokens: _Optional[_Union[SpecialTokenPolicy, _Mapping]] = ..., max_chunks: _Optional[int] = ...) -> None: ...

class TextChunk(_message.Message):
    __slots__ = ("ids", "start", "end", "byte_start", "byte_end")
    IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    BYTE_START_FIELD_NUMBER: _ClassVar[int]
    BYTE_END_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    start: int
    end: int
    byte_start: int
    byte_end: int
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., byte_start: _Optional[int] = ..., byte_end: _Optional[int] = ...) -> None: ...

class Chunks(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[TextChunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[TextChunk, _Mapping]]] = ...) -> None: ...

class ChunkResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[Chunks]
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[Chunks, _Mapping]]] = ...) -> None: ...

class ChunkStreamResponse(_message.Message):
    __slots__ = ("model", "chunks")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    chunks: _containers.RepeatedCompositeFieldContainer[TextChunk]
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., chunks: _Optional[_Iterable[_Union[TextChunk, _Mapping]]] = ...) -> None: ...

class DecodeStreamRequest(_message.Message):
    __slots__ = ("model", "errors", "ids", "flush")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    model: str
    errors: DecodeRequest.Errors
    ids: _containers.RepeatedScalarFieldContainer[int]
    flush: bool
    def __init__(self, model: _Optional[str] = ..., errors: _Optional[_Union[DecodeRequest.Errors, str]] = ..., ids: _Optional[_Iterable[int]] = ..., flush: _Optional[bool] = ...) -> None: ...

class DecodeStreamResponse(_message.Message):
    __slots__ = ("model", "text", "pending")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    text: str
    pending: bytes
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., text: _Optional[str] = ..., pending: _Optional[bytes] = ...) -> None: ...

class ChatContentPart(_message.Message):
    __slots__ = ("type", "text")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    type: str
    text: str
    def __init__(self, type: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ChatContentParts(_message.Message):
    __slots__ = ("parts",)
    PARTS_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[ChatContentPart]
    def __init__(self, parts: _Optional[_Iterable[_Union[ChatContentPart, _Mapping]]] = ...) -> None: ...

class ChatFunctionCall(_message.Message):
    __slots__ = ("name", "arguments", "arguments_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    arguments_json: str
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class ChatToolCall(_message.Message):
    __slots__ = ("id", "type", "function")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    function: ChatFunctionCall
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., function: _Optional[_Union[ChatFunctionCall, _Mapping]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "text", "parts", "null_content", "name", "tool_calls", "tool_call_id", "extra_json")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    NULL_CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    parts: ChatContentParts
    null_content: _struct_pb2.NullValue
    name: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ChatToolCall]
    tool_call_id: str
    extra_json: str
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ..., parts: _Optional[_Union[ChatContentParts, _Mapping]] = ..., null_content: _Optional[_Union[_struct_pb2.NullValue, str]] = ..., name: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ChatToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ChatConversation(_message.Message):
    __slots__ = ("messages", "tools_json", "add_generation_prompt")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_JSON_FIELD_NUMBER: _ClassVar[int]
    ADD_GENERATION_PROMPT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    tools_json: str
    add_generation_prompt: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., tools_json: _Optional[str] = ..., add_generation_prompt: _Optional[bool] = ...) -> None: ...

class EncodeChatRequest(_message.Message):
    __slots__ = ("model", "conversations", "content_special_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    conversations: _containers.RepeatedCompositeFieldContainer[ChatConversation]
    content_special_tokens: ContentSpecialTokens
    def __init__(self, model: _Optional[str] = ..., conversations: _Optional[_Iterable[_Union[ChatConversation, _Mapping]]] = ..., content_special_tokens: _Optional[_Union[ContentSpecialTokens, str]] = ...) -> None: ...

class ChatSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ChatEncoding(_message.Message):
    __slots__ = ("ids", "text", "message_spans", "spans_exact")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SPANS_FIELD_NUMBER: _ClassVar[int]
    SPANS_EXACT_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    message_spans: _containers.RepeatedCompositeFieldContainer[ChatSpan]
    spans_exact: bool
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., message_spans: _Optional[_Iterable[_Union[ChatSpan, _Mapping]]] = ..., spans_exact: _Optional[bool] = ...) -> None: ...

class EncodeChatResponse(_message.Message):
    __slots__ = ("model", "results", "total_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[ChatEncoding]
    total_tokens: int
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[ChatEncoding, _Mapping]]] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class CountChatTokensRequest(_message.Message):
    __slots__ = ("model", "conversations", "content_special_tokens", "total_only")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    model: str
    conversations: _containers.RepeatedCompositeFieldContainer[ChatConversation]
    content_special_tokens: ContentSpecialTokens
    total_only: bool
    def __init__(self, model: _Optional[str] = ..., conversations: _Optional[_Iterable[_Union[ChatConversation, _Mapping]]] = ..., content_special_tokens: _Optional[_Union[ContentSpecialTokens, str]] = ..., total_only: _Optional[bool] = ...) -> None: ...

class ChatCount(_message.Message):
    __slots__ = ("total", "per_message", "spans_exact", "estimate")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPANS_EXACT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    total: int
    per_message: _containers.RepeatedScalarFieldContainer[int]
    spans_exact: bool
    estimate: bool
    def __init__(self, total: _Optional[int] = ..., per_message: _Optional[_Iterable[int]] = ..., spans_exact: _Optional[bool] = ..., estimate: _Optional[bool] = ...) -> None: ...

class CountChatTokensResponse(_message.Message):
    __slots__ = ("model", "results", "total")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    results: _containers.RepeatedCompositeFieldContainer[ChatCount]
    total: int
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., results: _Optional[_Iterable[_Union[ChatCount, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...
