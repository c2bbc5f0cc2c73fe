"""The operations every front-end offers, written once: encode, count, decode, list models, model details,
(from ``budgets``) offsets, truncate, chunk, chunk_stream and decode_stream, and (from ``chat``)
encode_chat and count_chat.

A front-end (gRPC servicer, JSON API, command line) turns its wire format into one call here and the
result back; it passes the call's state (deadline, cancellation) as ``call`` and translates errors with
``tokend.service.errors.describe``. Each operation: checks the request limits, resolves the model once
(every item is answered by that exact version), binds the special-token policy to it, reserves the request's
working memory (``admission``: small requests never wait, large ones wait their turn), runs the batch loop
(stopping at the deadline; texts go to the engine's batch calls a chunk at a time, see ``batch``; the engine
call of an item of at least the lane's ``min_bytes`` runs on the worker's low-priority ``bulk_lane``, and a
split by the regex fallback that outlasts its first milliseconds on the ``regex_lane``; engine
calls that honour a ``call_stop`` give up midway once the deadline passes or the caller goes), bounds
the size of the answer before building it, and records the call's facts (``call_record``) for logs and
metrics.

    service = TokenizerService(ServedModels(Registry.open()), Limits())
    service.encode("cl100k_base", ["hello world"]).ids                 # [[15339, 1917]]
    service.count("o200k_base@1", ["hi <|endoftext|>"], special=SpecialTokenPolicy(allowed="all")).total
    service.decode("cl100k_base", [[15339, 1917]]).results             # ['hello world']

Inputs of encode/count are ``str`` (text, subject to the special-token policy) or ``bytes`` (raw bytes,
always ordinary text). The streamed operations are in ``budgets`` / ``budget_streams``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any, Literal

from tokend.engine.call_stop import CallStopped, stop_at
from tokend.engine.normalized_texts import keeping_normalized
from tokend.engine.regex_splitter import RegexTime, shared_regex_time
from tokend.errors import quoted
from tokend.service.admission import NOTHING_RESERVED, WorkAdmission, working_bytes
from tokend.service.batch import CallState, run_batch, run_text_batch, stopped_midway
from tokend.service.bulk_lane import BulkLane
from tokend.service.budgets import BudgetOperations
from tokend.service.call_record import current_record
from tokend.service.chat import ChatOperations
from tokend.service.errors import InvalidRequest
from tokend.service.measuring import engine_stop
from tokend.service.limits import (
    BYTES_PER_TOKEN_ID, WORKING_TEXT_FACTOR, AnswerBudget, Limits, answer_bytes, item_sizes, text_bytes,
)
from tokend.service.models import ServedModels, payload_format_name
from tokend.service.results import ChatFormatDetails, Counted, Decoded, Encoded, ModelDetails, ModelInfo, ModelVersion
from tokend.service.special_policy import DEFAULT_POLICY, BoundPolicy, SpecialTokenPolicy
from tokend.service.token_sizes import decoded_bytes
from tokend.service.work_sizes import working_sizes

__all__ = ["TokenizerService", "DECODE_ERRORS", "DECODE_OUTPUTS"]

DECODE_ERRORS = ("replace", "strict")
DECODE_OUTPUTS = ("text", "bytes")


class TokenizerService(BudgetOperations, ChatOperations):  # mixins: service/budgets.py, service/chat.py
    def __init__(
        self, models: ServedModels, limits: Limits | None = None, admission: WorkAdmission | None = None,
        lane: BulkLane | None = None,
        regex_lane: BulkLane | None = None,
    ) -> None:  # fmt: skip
        self.models = models
        self.limits = limits or Limits()
        self.admission = admission  # None: nothing waits (a command line, a test)
        self.lane = lane  # None: large items' engine work runs on the caller's thread
        # Where the regex fallback's slow calls go on (engine/regex_splitter's INLINE_SECONDS); None: on the
        # caller's thread. A lane of its own: a model whose split pattern backtracks then holds up neither the
        # large items of other models nor a core that small calls want.
        self.regex_lane = regex_lane

    # ---- operations ----------------------------------------------------------------------------
    def encode(
        self,
        model: str,
        inputs: Sequence[str | bytes],
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        call: CallState | None = None,
        packed: bool = False,
    ) -> Encoded:
        """Token ids of each input; raises BatchItemError naming the item that breaks the policy.

        ``packed``: a text encoded on its own may come back as a read-only uint32 ``memoryview``
        (``Encoding.encode_to_buffer``) instead of a list, for front-ends that write the ids out in bulk:
        no Python int per id is made (or freed) while the worker's other calls wait for the GIL."""
        sizes, loaded, policy = self._text_request(model, inputs, special, call)
        encoding = loaded.encoding
        answer = AnswerBudget(self.limits, items=len(inputs), max_token_value=encoding.max_token_value)
        encode_text = getattr(encoding, "encode_to_buffer", encoding.encode) if packed else encoding.encode

        def encode(item: str | bytes) -> list[int]:
            ids = self._bulk(encoding.encode_bytes, item, call) if isinstance(item, bytes) else policy.apply(
                lambda text, **options: self._bulk(encode_text, text, call, **options), item)
            answer.add(ids)  # stops before holding more than can be sent
            return ids

        def encode_texts(texts: list[str]) -> list[list[int]]:
            chunk = policy.apply_batch(encoding.encode_batch, texts)
            for ids in chunk:
                answer.add(ids)
            return chunk

        with self._keeping_normalized(), self._admitted(self._working_bytes("encode", encoding, inputs, sizes, call=call), call):
            ids = run_text_batch(inputs, encode, encode_texts, call=call)
        total = sum(map(len, ids))
        _record("encode", len(inputs), total, sum(sizes))
        return Encoded(_version(loaded), ids, total)

    def count(
        self,
        model: str,
        inputs: Sequence[str | bytes],
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        call: CallState | None = None,
    ) -> Counted:
        """Tokens of each input (the ids ``encode`` gives, counted without building them where possible)."""
        sizes, loaded, policy = self._text_request(model, inputs, special, call)
        encoding = loaded.encoding

        def count(item: str | bytes) -> int:
            if isinstance(item, bytes):
                return len(self._bulk(encoding.encode_bytes, item, call))
            return policy.apply(lambda text, **options: self._bulk(encoding.count, text, call, **options), item)

        with self._keeping_normalized(), self._admitted(self._working_bytes("count", encoding, inputs, sizes, call=call), call):
            counts = run_text_batch(inputs, count, lambda texts: policy.apply_batch(encoding.count_batch, texts),
                                    call=call)
        total = sum(counts)
        _record("count", len(inputs), total, sum(sizes))
        return Counted(_version(loaded), counts, total)

    def decode(
        self,
        model: str,
        inputs: Sequence[Sequence[int]],
        *,
        errors: Literal["replace", "strict"] = "replace",
        output: Literal["text", "bytes"] = "text",
        call: CallState | None = None,
    ) -> Decoded:
        """Text (``errors`` as in tiktoken) or bytes of each id list; the answer's size is known up front."""
        if errors not in DECODE_ERRORS:
            raise InvalidRequest("errors", f"unknown value {quoted(errors)}; use one of {', '.join(DECODE_ERRORS)}")
        if output not in DECODE_OUTPUTS:
            raise InvalidRequest("output", f"unknown value {quoted(output)}; use one of {', '.join(DECODE_OUTPUTS)}")
        ids = sum(len(item) for item in inputs)
        self.limits.check_request(items=len(inputs), input_bytes=BYTES_PER_TOKEN_ID * ids)
        loaded = self.models.load(model, call=call)
        encoding = loaded.encoding
        # Known before decoding; replacing invalid UTF-8 can only make text longer (checked as it grows).
        framing = answer_bytes(items=len(inputs))
        answer_size = framing + decoded_bytes(encoding, inputs, enough=self.limits.max_response_bytes - framing)
        self.limits.check_answer(answer_size)
        with self._admitted(working_bytes("decode", ids=ids, answer_bytes=answer_size), call):
            results = self._decode_items(encoding, inputs, errors, output, call)
        _record("decode", len(inputs), ids, 0)
        return Decoded(_version(loaded), results)

    def _decode_items(self, encoding: Any, inputs: Sequence[Sequence[int]], errors: str, output: str, call: Any) -> list[Any]:
        if output == "bytes":
            results: list[Any] = run_batch(inputs, encoding.decode_bytes, call=call)
        else:
            answer = answer_bytes(items=len(inputs))

            def decode(item: Sequence[int]) -> str:
                nonlocal answer
                text = encoding.decode(item, errors=errors)
                answer += text_bytes(text)
                self.limits.check_answer(answer, partial=True)
                return text

            results = run_batch(inputs, decode, call=call)
        return results

    def list_models(self) -> list[ModelInfo]:
        """Every model of the registry, by name."""
        return [
            ModelInfo(summary.name, sorted(summary.versions), summary.latest_version, dict(summary.aliases))
            for summary in sorted(self.models.registry.list_models(), key=lambda summary: summary.name)
        ]

    def get_model(self, model: str, *, call: CallState | None = None) -> ModelDetails:
        """One exact model version: vocabulary, special tokens, pattern, checksum, aliases, algorithm and
        the BOS/EOS/UNK/PAD tokens its manifest names."""
        loaded = self.models.load(model, call=call)
        manifest = loaded.manifest
        encoding = loaded.encoding
        aliases = sorted(
            alias
            for summary in self.models.registry.list_models()
            if summary.name == loaded.name
            for alias, version in summary.aliases.items()
            if version == loaded.version
        )
        try:
            eot: int | None = encoding.eot_token
        except (KeyError, AttributeError):  # tiktoken's behaviour for a model without <|endoftext|>
            eot = None
        return ModelDetails(
            model=_version(loaded),
            n_vocab=encoding.n_vocab,
            max_token_value=encoding.max_token_value,
            special_tokens=dict(encoding.special_tokens),
            pattern=encoding.pattern,
            payload_format=payload_format_name(manifest.payload_format),
            sha256=loaded.manifest_sha256,
            description=manifest.description,
            created_at=manifest.created_at,
            aliases=aliases,
            eot_token=eot,
            chat_format=_chat_format_details(loaded),
            algorithm=manifest.tokenizer_family,
            normalizer=manifest.normalizer,
            role_tokens=_role_tokens(manifest, encoding),
        )

    # ---- parts ---------------------------------------------------------------------------------
    def _text_request(
        self, model: str, inputs: Sequence[str | bytes], special: SpecialTokenPolicy, call: CallState | None
    ) -> tuple[list[int], Any, BoundPolicy]:
        """Limits first (nothing is loaded for a refused request), then the model and the bound policy;
        returns the input bytes of each item, the LoadedModel and the policy."""
        sizes = item_sizes(inputs)
        self.limits.check_request(items=len(inputs), input_bytes=sum(sizes) + special.listed_bytes())
        loaded = self.models.load(model, call=call)
        return sizes, loaded, special.bind(loaded.encoding)

    def _working_bytes(
        self, operation: str, encoding: Any, inputs: Sequence[str | bytes], sizes: Sequence[int], factor: int = 1,
        *, call: CallState | None = None,
    ) -> int:
        """``factor`` x ``working_bytes(operation)`` of the inputs, counted on the text the engine works on
        (``working_sizes``: a Unigram model's normalized text, measured only where it could make the request large;
        RequestLimitExceeded past twice ``max_request_bytes`` of it: ``Limits.check_working_text``). Measuring
        normalizes, under the call's stop (``measuring``)."""
        if self.admission is not None:
            sizes = working_sizes(operation, encoding, inputs, sizes, small_bytes=self.admission.small_bytes,
                                  factor=factor, check=self.limits.check_working_text, call=call)
        return factor * working_bytes(operation, sizes=sizes)

    def _keeping_normalized(self) -> Any:
        """The scope around a text operation's measuring (``_working_bytes``) and its engine calls in which a text
        measured whole keeps its normalized form, and its encode takes it instead of normalizing it again
        (engine/normalized_texts.py): at most what the request may be admitted with
        (``Limits.check_working_text``)."""
        if self.admission is None:  # nothing is measured
            return nullcontext()
        return keeping_normalized(WORKING_TEXT_FACTOR * self.limits.max_request_bytes)

    def _bulk(self, method: Any, item: str | bytes, call: CallState | None, **options: Any) -> Any:
        """``method(item, **options)``: an engine call, on the bulk lane when the item is large (the engine's
        work on it runs with the GIL released, so the lane's low priority delays no other call's GIL)."""
        lane = self.lane
        if lane is None or len(item) < lane.min_bytes:  # (``lane.run`` would run it here too: no closure made)
            return method(item, **options)
        return lane.run(lambda: method(item, **options), call=call, size=len(item))

    def _admitted(self, size: int, call: CallState | None, regex_chars: int | None = None) -> _Admitted:
        """Hold ``size`` bytes of the worker's working memory (``admission``) until the call ends: the end
        of the front-end's ``recording()`` when there is one (its answer is built inside it), else here.
        Inside, the regex fallback's split patterns share one time bound for all the call's texts
        (``shared_regex_time``; ``regex_chars``: its ``most_chars``, for operations that split their text
        again); the RegexTime it yields is for work done after the block (a stream's). Inside, engine calls
        that honour a call stop (``call_stop``: the SentencePiece core) give up midway once the call's
        deadline passes or its caller goes; the batch loop names the item, anything else is answered here."""
        return _Admitted(self, size, call, regex_chars)


class _Admitted:
    """``TokenizerService._admitted``'s scope. A class, not a ``@contextmanager`` generator: every call enters one,
    and a generator-based context manager costs several Python calls more per entry."""

    __slots__ = ("_service", "_size", "_call", "_regex_chars", "_release", "_regex_time", "_stop")

    def __init__(self, service: TokenizerService, size: int, call: CallState | None, regex_chars: int | None) -> None:
        self._service, self._size, self._call, self._regex_chars = service, size, call, regex_chars

    def __enter__(self) -> RegexTime:
        service, size, call = self._service, self._size, self._call
        admission = service.admission
        release = None if admission is None else admission.reserve(size, call=call)
        if release is NOTHING_RESERVED:
            release = None
        record = current_record()
        if release is not None and record is not None:
            record.at_end(release)  # given back with the answer, not here
            record.held_bytes += min(size, admission.large_budget_bytes)  # type: ignore[union-attr]  # (what ``reserve`` took)
            release = None
        self._release = release
        runner = None if service.regex_lane is None else partial(_run_on, service.regex_lane, call)
        self._regex_time = shared_regex_time(most_chars=self._regex_chars, runner=runner)
        try:
            regex_time = self._regex_time.__enter__()
        except BaseException:
            self._released()
            raise
        try:
            self._stop = stop_at(engine_stop(call))
            self._stop.__enter__()
        except BaseException:
            self._regex_time.__exit__(None, None, None)
            self._released()
            raise
        return regex_time

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            self._stop.__exit__(exc_type, exc, traceback)
            self._regex_time.__exit__(exc_type, exc, traceback)
            if exc_type is not None and issubclass(exc_type, CallStopped):
                raise stopped_midway(self._call, completed=0, total=0, during="its inputs") from None
        finally:
            self._released()

    def _released(self) -> None:
        if self._release is not None:
            self._release()


def _run_on(lane: BulkLane, call: CallState | None, fn: Any) -> Any:
    return lane.run(fn, call=call)


def _chat_format_details(loaded: Any) -> ChatFormatDetails | None:
    spec = loaded.manifest.chat_format
    if spec is None or loaded.chat is None:
        return None
    kind = "template" if spec.name == "template" else "builtin"
    return ChatFormatDetails(spec.name, kind, loaded.chat.chat_format.estimate, spec.describe())


def _version(loaded: Any) -> ModelVersion:
    return ModelVersion(loaded.name, loaded.version)


def _role_tokens(manifest: Any, encoding: Any) -> dict[str, tuple[str, int]]:
    """role -> (text, id) for the BOS/EOS/UNK/PAD tokens the manifest names (the registry checked at load
    that each is a token of the model)."""
    roles = {}
    for role in ("bos", "eos", "unk", "pad"):
        text = getattr(manifest, f"{role}_token")
        if text is not None:
            roles[role] = (text, encoding.encode_single_token(text))
    return roles


def _record(operation: str, items: int, tokens: int, size: int) -> None:
    record = current_record()
    if record is not None:
        record.operation, record.items, record.tokens, record.input_bytes = operation, items, tokens, size
