"""`Publishing`: the registry's writes — new versions, chat formats, aliases (directory sources only).

    registry = Registry.open("models/")
    registry.publish("mine", payload=Path("mine.model").read_bytes(), payload_format="minbpe_model",
                     provenance={"kind": "imported", "source": "mine.model"}).ref    # 'mine@1'
    registry.set_alias("mine", "stable", 1)                                          # previous target or None
    registry.publish_chat_format("mine@1", builtin_chat_format("chatml")).ref       # 'mine@2'

Published versions are immutable: a write makes a new version (or moves an alias, recorded in its history).
Every new version is loaded and verified before this process serves it; a payload that does not load is
refused before anything is written (`publish`). A remote (HTTP) or embedded registry is read-only: writes
raise its read-only error. A mixin of `Registry` only: it uses the registry's source, loader and catalog.
"""

from __future__ import annotations

from typing import Any

from tokend.errors import RegistryError, TokendError, VersionConflictError
from tokend.registry.chat.spec import ChatFormatSpec
from tokend.registry.directory_source import DirectorySource
from tokend.registry.manifest import Compression, Manifest, PayloadFormat, Provenance
from tokend.registry.payload import NewVersion, describe_payload, verify_payload

__all__ = ["Publishing"]

_AUTO_VERSION_ATTEMPTS = 8


class Publishing:
    """Mixin of `Registry`: `publish`, `publish_chat_format`, `publish_version`, `set_alias`, `alias_history`."""

    def publish(
        self,
        name: str,
        *,
        payload: bytes,
        payload_format: PayloadFormat,
        version: int | None = None,
        compression: Compression = "none",
        pattern: str | None = None,
        special_tokens: dict[str, int] | None = None,
        explicit_n_vocab: int | None = None,
        expected_content_sha256: str | None = None,
        description: str = "",
        provenance: Provenance | dict[str, Any],
        bos_token: str | None = None,
        eos_token: str | None = None,
        chat_template: str | None = None,
        share_payload_with: str | None = None,
        chat_format: ChatFormatSpec | dict[str, Any] | None = None,
    ) -> Manifest:
        """Publish payload bytes as `name@version` (None: the next version). Returns the stored manifest.

        The payload is loaded once before anything is written, so a broken payload is never published.
        Same content under an existing version is idempotent; different content raises VersionConflictError.
        `share_payload_with` ("o200k_base@1"): a version of this registry with the same payload content,
        whose file the new version then uses instead of a copy (`payload.shared_with` in its manifest).

            manifest = registry.publish("mine", payload=Path("mine.model").read_bytes(),
                                        payload_format="minbpe_model",
                                        provenance={"kind": "imported", "source": "mine.model"})
            manifest.ref                                 # 'mine@1' (the first version of "mine")
        """
        auto_version = version is None
        new = describe_payload(
            name=name,
            version=version if version is not None else self._next_version(name),
            payload_format=payload_format,
            stored=payload,
            compression=compression,
            pattern=pattern,
            special_tokens=special_tokens,
            explicit_n_vocab=explicit_n_vocab,
            expected_content_sha256=expected_content_sha256,
            description=description,
            provenance=provenance,
            bos_token=bos_token,
            eos_token=eos_token,
            chat_template=chat_template,
            shared_with=self.manifest(f"{self.resolve(share_payload_with)}") if share_payload_with else None,
            chat_format=chat_format,
        )
        return self._publish_numbered(new, auto_version=auto_version)

    def _publish_numbered(self, new: NewVersion, *, auto_version: bool) -> Manifest:
        name = new.manifest.name
        for _ in range(_AUTO_VERSION_ATTEMPTS):
            try:
                return self.publish_version(new)
            except VersionConflictError:
                if not auto_version:
                    raise
                # Another publisher took that number first: take the next one.
                new = NewVersion(new.manifest.replace(version=self._next_version(name)), new.stored)
        raise RegistryError(f"could not find a free version for {name} after {_AUTO_VERSION_ATTEMPTS} attempts")

    def publish_chat_format(
        self, ref: str, chat_format: ChatFormatSpec | dict[str, Any] | None, *, description: str | None = None
    ) -> Manifest:
        """Publish the payload of `ref` again, as the next version of its name, with `chat_format` (None:
        without one). Published versions are immutable, so adding or changing a chat format is a new version.
        Everything else the manifest says carries over (BOS/EOS, family, chat template; the normalizer comes
        with the payload). The new version stores no payload of its own: it shares the file of `ref` (or of
        the version `ref` shares it with), so a chat format costs a manifest, not a second copy of the ranks.

            registry.publish_chat_format("qwen3@1", builtin_chat_format("chatml")).ref   # 'qwen3@2'
        """
        vref = self.resolve(ref)
        manifest, _ = self._models.read_manifest(vref)
        stored = self._source.read_payload(manifest)
        verify_payload(manifest, stored)
        provenance = {**manifest.provenance.to_document(exclude_none=True), "chat_format_added_to": str(vref)}
        owner = self.manifest(manifest.payload.shared_with) if manifest.payload.shared_with is not None else manifest
        new = describe_payload(
            name=manifest.name,
            version=self._next_version(manifest.name),
            payload_format=manifest.payload_format,
            stored=stored,
            compression=manifest.payload.compression,
            pattern=manifest.pattern,
            special_tokens=dict(manifest.special_tokens),
            explicit_n_vocab=manifest.explicit_n_vocab,
            expected_content_sha256=manifest.payload.content_sha256,
            description=manifest.description if description is None else description,
            provenance=provenance,
            bos_token=manifest.bos_token,
            eos_token=manifest.eos_token,
            chat_template=manifest.chat_template,
            shared_with=owner,
            family=manifest.family,
            chat_format=chat_format,
        )
        return self._publish_numbered(new, auto_version=True)

    def publish_version(self, new: NewVersion) -> Manifest:
        """Publish a prepared manifest + payload (see `payload.describe_payload`).

        The new version is loaded and verified here, so `name` (latest) moves to it as soon as this returns
        in the publishing process (other processes switch once their own load of it has verified). A version
        that does not load is still published (it is stored as given); its load failure is logged and
        remembered, and `name` keeps serving the version below it."""
        manifest = self._source.publish(new)
        self._rescan()
        try:
            self.load(manifest.ref)
        except TokendError:
            pass
        return manifest

    def _next_version(self, name: str) -> int:
        if not isinstance(self._source, DirectorySource):
            raise self._source.read_only_error("publish")
        return self._source.next_version(name)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point `name@alias` at an existing version; the move is recorded. Returns the previous version."""
        previous = self._source.set_alias(name, alias, version)
        self._rescan()
        return previous

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        return self._source.alias_history(name)
