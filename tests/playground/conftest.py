"""Fixtures of the playground tests: the real embedded registry, a real playground on a free loopback port,
and tiktoken encodings as the oracle (made to work offline by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tiktoken

from tokend.playground import PlaygroundServer
from tokend.registry import Registry

from .json_client import JsonClient

OPENAI_MODELS = ("cl100k_base", "o200k_base")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.open()


@pytest.fixture(scope="session")
def playground(registry: Registry) -> Iterator[PlaygroundServer]:
    with PlaygroundServer(registry, host="127.0.0.1", port=0) as server:
        assert server.load_models() == []  # as `tokend serve` does: pages and clients find the models loaded
        yield server


@pytest.fixture(scope="session")
def client(playground: PlaygroundServer) -> JsonClient:
    return JsonClient(playground.url)


@pytest.fixture(scope="session")
def oracle() -> dict[str, tiktoken.Encoding]:
    return {name: tiktoken.get_encoding(name) for name in OPENAI_MODELS}
