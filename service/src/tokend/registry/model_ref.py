"""Model references: `"name"`, `"name@7"`, `"name@stable"` — parsing only, no lookup.

    >>> parse_model_ref("cl100k_base@1")
    ParsedModelRef(name='cl100k_base', version=1, alias=None)
    >>> parse_model_ref("mymodel")          # latest = highest version
    ParsedModelRef(name='mymodel', version=None, alias=None)

A selector made only of digits is a version (positive, no leading zeros); anything else is an alias.
`latest` is a reserved alias meaning the highest version; it cannot be set. Resolution against what a
registry holds is `Registry.resolve`.

A reference whose structure is broken (`"@1"`, `"a@"`, `"x@y@z"`, `"name@0"`) raises `MalformedModelRef`;
one that is well formed but spelled as no name or alias can be (`"bad name!"`) raises a plain ValueError:
the first is a mistake in the call, the second names a model that does not exist.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from tokend.registry.manifest import validate_model_name

LATEST = "latest"
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}\Z")


class MalformedModelRef(ValueError):
    """A reference that does not follow `name[@version|@alias]`: empty name or selector, a second '@',
    or a version that is not a positive integer."""


class ModelVersionRef(NamedTuple):
    """One exact published version. `str(ref)` is "name@version"."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class ParsedModelRef(NamedTuple):
    """A reference as written: at most one of `version` / `alias` is set; neither means latest."""

    name: str
    version: int | None
    alias: str | None


def validate_alias(alias: str) -> str:
    """Return `alias` if it can be set as an alias, else raise ValueError saying what is allowed."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise ValueError(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter"
        )
    if alias == LATEST:
        raise ValueError("'latest' always means the highest version and cannot be set as an alias")
    return alias


def parse_version(text: str) -> int:
    """Parse a version number: a positive integer written without sign or leading zeros."""
    if not text.isdigit() or not text.isascii() or text.startswith("0"):
        raise MalformedModelRef(f"invalid version {text!r}: versions are positive integers such as 1, 2, 17")
    return int(text)


def parse_model_ref(ref: str) -> ParsedModelRef:
    """Split a reference into name and selector; raise ValueError for malformed ones."""
    if type(ref) is str:
        return _parse_str(ref)
    if not isinstance(ref, str):
        raise ValueError(f"model reference must be a string like 'name' or 'name@3', not {ref!r}")
    return _parse(ref)


# A request's reference is parsed three times on its way (the service's checks, resolution, the load: ~1.3 us
# each), and every call names one of a few models. Only references that parse are kept (an error is raised
# afresh each time): a valid name, and a selector whose version may run to int()'s 4,300 digits, so 1,024 entries
# hold ~6.7 MB at worst, a few KB for real traffic.
@lru_cache(maxsize=1024)
def _parse_str(ref: str) -> ParsedModelRef:
    return _parse(ref)


def _parse(ref: str) -> ParsedModelRef:
    name, separator, selector = ref.partition("@")
    if separator and not name:
        raise MalformedModelRef(f"model reference {ref!r} has no name before '@': write 'name@3' or 'name@alias'")
    validate_model_name(name)
    if not separator:
        return ParsedModelRef(name, None, None)
    if not selector:
        raise MalformedModelRef(f"model reference {ref!r} has an empty selector after '@': write 'name@3' or 'name@alias'")
    if "@" in selector:
        raise MalformedModelRef(f"model reference {ref!r} has more than one '@': write 'name@3' or 'name@alias'")
    if selector.isdigit():
        return ParsedModelRef(name, parse_version(selector), None)
    if selector == LATEST:
        return ParsedModelRef(name, None, None)
    if not _ALIAS.match(selector):
        raise ValueError(f"model reference {ref!r}: {selector!r} is neither a version number nor an alias name")
    return ParsedModelRef(name, None, selector)
