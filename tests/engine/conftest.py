"""Fixtures for the engine tests: `enc` (ours) and `oracle` (tiktoken), parametrized over cl100k_base and
o200k_base. Where our encodings come from is decided in `_encodings._load_ours` (one switch point)."""

from __future__ import annotations

import pytest

from tests.engine._encodings import ENCODING_NAMES, ours, theirs


@pytest.fixture(params=ENCODING_NAMES, scope="session")
def encoding_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def enc(encoding_name):
    return ours(encoding_name)


@pytest.fixture(scope="session")
def oracle(encoding_name):
    return theirs(encoding_name)


@pytest.fixture(scope="session")
def cl100k():
    return ours("cl100k_base")
