"""The public surface: names re-exported from `tokend`, the exception tree, constructor validation."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

import tokend
from tokend import errors
from tokend.engine import PATTERNS, Encoding


def test_import_tokend_does_not_import_the_registry():
    code = "import sys, tokend; print('tokend.registry' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_cold_get_encoding_imports_only_what_it_uses():
    """Cold start (issue 18): the first encode of an embedded model reads and checks its manifest and
    payload, and imports neither a validation library, nor `regex`, nor a chat renderer, Jinja2 or http.client
    (each costs 10-50 ms and is imported when a model or call needs it)."""
    code = (
        "import sys, tokend\n"
        "tokend.get_encoding('cl100k_base@1').encode('hello world')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('regex', 'pydantic', 'jinja2', 'http')"
        " or m.startswith('tokend.registry.chat.') and not m.endswith('.spec'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []


def test_lazy_names_are_listed():
    assert {"Registry", "get_encoding", "Encoding", "train"} <= set(dir(tokend))
    with pytest.raises(AttributeError, match="no_such_name"):
        tokend.no_such_name  # noqa: B018


def test_exception_tree():
    assert issubclass(errors.DisallowedSpecialTokenError, (errors.TokendError, ValueError))
    assert issubclass(errors.UnknownTokenIdError, KeyError)
    for name in ("ModelFormatError", "ChecksumMismatchError", "ModelNotFoundError", "InvalidBudgetError", "OffsetsUnavailableError"):
        assert issubclass(getattr(errors, name), ValueError)
    for name in ("VersionConflictError", "RegistryError"):
        assert issubclass(getattr(errors, name), errors.TokendError)
        assert getattr(tokend, name) is getattr(errors, name)


@pytest.mark.parametrize(
    "error",
    [
        errors.DisallowedSpecialTokenError("<|x|>", 3, 1),
        errors.UnknownTokenIdError(7, 2, n_vocab=5),
        errors.ChecksumMismatchError(expected="a", actual="b", what="w"),
        errors.ModelNotFoundError("m@2", ["m@1"]),
        errors.InvalidBudgetError("overlap", "overlap must be below max_tokens (4), got 4"),
        errors.OffsetsUnavailableError("t5", 7),
    ],
)
def test_errors_pickle(error):
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error) and str(clone) == str(error)


def test_patterns_table():
    assert set(PATTERNS) == {"gpt2", "gpt4", "o200k"}


BYTES = {bytes([i]): i for i in range(256)}


@pytest.mark.parametrize(
    "ranks, specials, n_vocab, fragment",
    [
        ({}, {}, None, "empty"),
        ({b"a": 0}, {}, None, "single bytes"),
        (BYTES | {b"ab": 97}, {}, None, "share a rank"),
        (BYTES, {"<|x|>": 5}, None, "id 5"),
        (BYTES, {}, 300, "explicit_n_vocab=300"),
    ],
)
def test_constructor_validation(ranks, specials, n_vocab, fragment):
    with pytest.raises(errors.ModelFormatError, match=fragment):
        Encoding("bad", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens=specials, explicit_n_vocab=n_vocab)


def test_bad_pattern_is_a_format_error():
    with pytest.raises(errors.ModelFormatError, match="pattern"):
        Encoding("bad", pat_str="(", mergeable_ranks=BYTES, special_tokens={})
