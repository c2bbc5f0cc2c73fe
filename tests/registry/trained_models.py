"""Publishing a trainer result the way `tokend train` does (minbpe payload), for the registry tests."""

from __future__ import annotations

from tokend.engine import MinbpeModel, dump_minbpe_model
from tokend.registry import Registry


def minbpe_payload(result) -> bytes:
    encoding = result.encoding
    model = MinbpeModel(pattern=encoding.pattern, special_tokens=dict(encoding.special_tokens), merges=result.merges)
    return dump_minbpe_model(model).encode("utf-8")


def publish_trained(registry: Registry, name: str, result, *, version: int | None = None, description: str = ""):
    return registry.publish(
        name,
        version=version,
        payload=minbpe_payload(result),
        payload_format="minbpe_model",
        description=description,
        provenance={"kind": "trained", "settings": {"vocab_size": result.encoding.n_vocab}},
    )
