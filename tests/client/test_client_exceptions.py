"""The client's exception tree mirrors the engine's (DEVELOPERS.md) and is documented in one place."""

from __future__ import annotations

import inspect

import pytest

import tokend.errors
import tokend_client
from tokend_client import _exceptions

SHARED = ["TokendError", "DisallowedSpecialTokenError", "UnknownTokenIdError", "ModelNotFoundError", "InvalidBudgetError",
          "OffsetsUnavailableError"]


def _builtin_bases(cls: type) -> set[type]:
    return {base for base in cls.__mro__ if base.__module__ == "builtins"}


@pytest.mark.parametrize("name", SHARED)
def test_same_names_and_same_builtin_bases_as_the_engine(name):
    client_class, engine_class = getattr(tokend_client, name), getattr(tokend.errors, name)
    assert _builtin_bases(client_class) == _builtin_bases(engine_class)


def test_every_client_exception_is_in_the_documented_tree():
    classes = {
        name for name, value in vars(tokend_client).items() if inspect.isclass(value) and issubclass(value, Exception)
    }
    assert "TokendError" in classes and len(classes) == 15
    for name in classes:
        assert issubclass(getattr(tokend_client, name), tokend_client.TokendError)
        assert f"{name}(" in _exceptions.__doc__, f"{name} is missing from the tree in _exceptions.py"


def test_messages_say_how_to_fix_the_call():
    error = tokend_client.DisallowedSpecialTokenError("<|endoftext|>", offset=3, item=2)
    assert "allowed_special={'<|endoftext|>', ...}" in str(error) and "disallowed_special=()" in str(error)
    assert "at character 3 of item 2" in str(error)
    missing = tokend_client.ModelNotFoundError("x", available=["a@1", "b@2"])
    assert "a@1, b@2" in str(missing)
    assert str(tokend_client.UnknownTokenIdError(7, item=1)).startswith("Invalid token for decoding: 7 in item 1")
