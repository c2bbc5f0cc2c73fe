"""Fixtures: `model_name` (every model of models.MODEL_NAMES), `ours` (our SentencePieceEncoding) and
`oracle` (sentencepiece's SentencePieceProcessor over the same bytes)."""

from __future__ import annotations

import pytest

from tests.engine.sentencepiece.models import MODEL_NAMES, ours as load_ours, oracle as load_oracle


@pytest.fixture(params=MODEL_NAMES, scope="session")
def model_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def ours(model_name):
    return load_ours(model_name)


@pytest.fixture(scope="session")
def oracle(model_name):
    return load_oracle(model_name)
