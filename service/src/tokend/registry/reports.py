"""Value objects the registry hands back: loaded models, refresh and verification reports.

    >>> from tokend.registry import default_registry
    >>> registry = default_registry()               # the embedded registry, as tokend.get_encoding uses it
    >>> loaded = registry.load("cl100k_base@1")
    >>> loaded.ref, loaded.manifest_sha256[:12], loaded.encoding
    ('cl100k_base@1', '7a37d7be924c', <Encoding 'cl100k_base'>)
    >>> report = registry.refresh()                 # nothing is ever published into the embedded registry
    >>> report.added, report.alias_moves, report.failed, report.changed
    ([], [], {}, False)
    >>> results = registry.verify()                 # every checksum, read again now (shared payloads too)
    >>> len(results), [result.ref for result in results if not result.ok]
    (10, [])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokend.engine import Encoding
from tokend.errors import ChatFormatNotSetError
from tokend.registry.manifest import Manifest

if TYPE_CHECKING:
    from tokend.registry.chat import ChatCount, ChatEncoder, ChatEncoding, ContentSpecialTokens, TemplateLimits


@dataclass(frozen=True)
class LoadedModel:
    """One exact version, verified and ready. Immutable: hold on to it for the length of a request."""

    name: str
    version: int
    manifest: Manifest
    manifest_sha256: str  # of manifest.json as stored: identifies the exact artifact
    encoding: Encoding
    load_seconds: float = 0.0  # read + verify + parse, for the model-load metric
    chat: ChatEncoder | None = None  # the manifest's chat format bound to the encoding (None: no chat format)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def encode_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: ContentSpecialTokens = "reference",
        limits: TemplateLimits | None = None,
    ) -> ChatEncoding:
        """The prompt ids of a chat in this version's chat format (see `ChatEncoder.encode_chat`).

            registry.load("qwen3").encode_chat([{"role": "user", "content": "Hi"}]).ids   # qwen3 with chatml
            # [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198]

        A version published without a chat format refuses:

            >>> from tokend.registry import default_registry
            >>> default_registry().load("cl100k_base@1").encode_chat([{"role": "user", "content": "Hi"}])
            Traceback (most recent call last):
            tokend.errors.ChatFormatNotSetError: model cl100k_base@1 has no chat format; use a model that has one, ...
        """
        return self._chat().encode_chat(
            messages, tools, add_generation_prompt, content_special_tokens=content_special_tokens, limits=limits
        )

    def count_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: ContentSpecialTokens = "reference",
        limits: TemplateLimits | None = None,
        per_message: bool = True,
    ) -> ChatCount:
        """`ChatCount(total, per_message, ...)` of a chat in this version's chat format."""
        return self._chat().count_chat(
            messages, tools, add_generation_prompt, content_special_tokens=content_special_tokens, limits=limits,
            per_message=per_message,
        )

    def _chat(self) -> ChatEncoder:
        if self.chat is None:
            raise ChatFormatNotSetError(self.ref)
        return self.chat


@dataclass(frozen=True)
class AliasMove:
    name: str
    alias: str
    previous: int | None  # None: the alias is new
    current: int | None  # None: the alias was removed

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}: {self.previous} -> {self.current}"


@dataclass(frozen=True)
class RefreshReport:
    """What one `Registry.refresh()` saw change. `error` is set when the source itself was unusable
    (the previous catalog stays in force). `failed`: new targets of `name` / `name@alias` that did not
    load (`name@version` -> why; the reference keeps its previous version). `damaged`: loaded versions
    whose files no longer verify (-> why; the copy verified at load time keeps serving). `loading`: new
    targets still loading when refresh returned (they take over once loaded and verified)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    alias_moves: list[AliasMove] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    loading: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.alias_moves or self.failed or self.damaged or self.loading)


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of checking one version: `error` is None when every checksum matched."""

    ref: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
