"""A varied test corpus assembled from text on this machine, for conformance tests against tiktoken.

Kinds:
- "english": licenses (/usr/share/common-licenses), GNU info manuals (/usr/share/info), Python's pydoc topics,
  Debian changelogs (/usr/share/doc/*/changelog*.gz).
- "code": Python stdlib sources, C headers (/usr/include), JavaScript (/usr/share/javascript), shell scripts.
- "multilingual": gettext translations (/usr/share/locale/*/LC_MESSAGES/*.mo, ~200 languages and many
  scripts) and CPython's CJK test texts (test/cjkencodings/*-utf8.txt).
- "edge": hand-written strings for the pre-splitting corner cases (emoji and ZWJ sequences, whitespace
  runs and exotic spaces, digits, contractions with ASCII and non-ASCII apostrophes, CRLF, trailing
  whitespace, combining marks, control characters).

>>> from tests.corpus import corpus_texts, corpus_by_kind
>>> texts = corpus_texts(limit_bytes=50_000)            # every kind, each capped at ~50 kB
>>> english = corpus_by_kind(limit_bytes=50_000)["english"]

Stable API: `KINDS`, `corpus_texts(limit_bytes=..., kinds=KINDS)`, `corpus_by_kind(limit_bytes=...)`,
`edge_cases()`. Results are deterministic on a given machine (sorted file lists, fixed sampling). Sources
that are missing on another machine are skipped; "edge" is always present. Not handled: guaranteeing
the same bytes on different machines (the files differ) — golden ids always come from tiktoken at run time.
"""

from __future__ import annotations

import functools
import glob
import gzip
import os
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["KINDS", "corpus_texts", "corpus_by_kind", "edge_cases"]

KINDS = ("english", "code", "multilingual", "edge")

_DOCUMENT_CHARS = 8_000  # documents are cut into slices of about this size so a limit samples many files
_STDLIB = sysconfig.get_paths()["stdlib"]


def edge_cases() -> list[str]:
    """Hand-written corner cases of the cl100k/o200k/GPT-2 split patterns."""
    return [
        "hello123!!!? (안녕하세요!) 😉",
        "Hello world! It's a test. Don't, won't, can't; I'm, you're, we've, they'll, he'd.",
        "DON'T WON'T I'M YOU'RE WE'VE THEY'LL HE'D It'S ShE'lL",
        "don’t won’t it’s — l’homme, aujourd’hui, ʼs ʼt „quote“ «guillemets»",
        "The year 2024 had 365 days; 1234567890 12 345 6789 ٣٤٥ ١٢٣٤٥ ⅫⅦ ½ ²³",
        "a  b   c    d\t\te\n\nf\n \n g \r\n h\r\n\r\n",
        "trailing spaces   \nand tabs\t\t\n   leading\n",
        "line one\r\nline two\r\n\r\nline four\r\n",
        "   ",
        "\n",
        " ",
        "",
        "x",
        "nbsp\u00a0here\u2009thin\u2003em\u3000ideographic\u202fnarrow\u205fmath\u1680ogham",
        "next\x85line sep\u2028para sep\u2029end",
        "controls \x00\x01\x1c\x1d\x1e\x1f\x7f \x0b\x0c vt ff",
        "emoji 😀😃😄 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✨🎉",
        "combining: e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 \u0e01\u0e34\u0e19 Zalgo: Z\u0351\u036b\u0343a\u0336l\u0358g\u0334o",
        "mixed 中文English日本語テキスト한국어 text",
        "العربية עברית हिन्दी தமிழ் ไทย ქართული Ελληνικά Русский ✓",
        "CamelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case HTTPServerError XMLHttpRequest",
        "def f(x):\n    return x ** 2  # comment\n\n\nclass A:\n\tpass\n",
        "path/to/file.txt http://example.com/a?b=c&d=e#f user@example.org ../../etc",
        "!!!???...,,,;;;:::---___+++===***&&&|||~~~```'''\"\"\"",
        "<|endoftext|> is plain text here, and so is <|fim_prefix|>",
        "ǅungla ǈubljana ǋ Σίσυφος ΣΊΣΥΦΟΣ ſtraße İstanbul ıi",
        "'s 's'S 'll'LL 've 're 'd 'm 't",
        "x" * 300 + " " + "ab" * 200,
        " " * 100 + "word" + "\n" * 50,
        "1" * 50 + "a1b2c3" * 20,
        "\t\n \t\n \r \r\n\n\r",
        "😀" * 40,
        "QmFzZTY0IGVuY29kZWQgdGV4dCBnb2VzIGhlcmUgYW5kIGl0IGlzIHF1aXRlIGxvbmc/+/==",
    ]


def corpus_by_kind(limit_bytes: int = 200_000) -> dict[str, list[str]]:
    """Every kind, each capped at about `limit_bytes` of UTF-8 ("edge" is never capped)."""
    return {kind: corpus_texts(limit_bytes=limit_bytes, kinds=(kind,)) for kind in KINDS}


def corpus_texts(limit_bytes: int = 200_000, *, kinds: Sequence[str] = KINDS) -> list[str]:
    """Documents of the given kinds; each kind contributes about `limit_bytes` (spread over its sources)."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown corpus kind(s) {unknown}; choose from {KINDS}")
    texts: list[str] = []
    for kind in kinds:
        if kind == "edge":
            texts += edge_cases()
        else:
            texts += _take(_SOURCES[kind](), limit_bytes)
    return texts


def _take(sources: list[Iterable[str]], limit_bytes: int) -> list[str]:
    # Round-robin over sources, so a small limit still samples every source.
    iterators: list[Iterator[str]] = [iter(source) for source in sources]
    taken: list[str] = []
    used = 0
    while iterators and used < limit_bytes:
        for iterator in list(iterators):
            document = next(iterator, None)
            if document is None:
                iterators.remove(iterator)
                continue
            document = document[: max(limit_bytes - used, 0)]
            if document:
                taken.append(document)
                used += len(document.encode("utf-8", "surrogatepass"))
            if used >= limit_bytes:
                break
    return taken


def _slices(text: str) -> Iterator[str]:
    for start in range(0, len(text), _DOCUMENT_CHARS):
        yield text[start : start + _DOCUMENT_CHARS]


def _read_text(path: str) -> str:
    try:
        data = gzip.decompress(_read_bytes(path)) if path.endswith(".gz") else _read_bytes(path)
        return data.decode("utf-8", "replace")
    except (OSError, EOFError, ValueError):
        return ""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(2_000_000)


def _files(pattern: str, step: int = 1) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))[::step]


def _documents(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        yield from _slices(_read_text(path))


def _english() -> list[Iterable[str]]:
    return [
        _documents(_files("/usr/share/common-licenses/*")),
        _documents(_files("/usr/share/info/*.gz")),
        _documents([os.path.join(_STDLIB, "pydoc_data", "topics.py")]),
        _documents(_files("/usr/share/doc/*/changelog*.gz")),
    ]


def _code() -> list[Iterable[str]]:
    return [
        _documents(_files(os.path.join(_STDLIB, "*.py"))),
        _documents(_files("/usr/include/**/*.h", step=7)),
        _documents(_files("/usr/share/javascript/**/*.js", step=5)),
        _documents(_files("/usr/share/**/*.sh", step=3)),
    ]


def _multilingual() -> list[Iterable[str]]:
    return [_translations(), _documents(_files(os.path.join(_STDLIB, "test", "cjkencodings", "*-utf8.txt")))]


def _translations() -> Iterator[str]:
    # One short document per language first (so even a small limit covers many scripts), then the rest.
    by_language: dict[str, list[str]] = {}
    for path in _files("/usr/share/locale/*/LC_MESSAGES/*.mo"):
        by_language.setdefault(path.split(os.sep)[-3], []).append(path)
    documents = {}
    for language in sorted(by_language):
        lines: list[str] = []
        for path in by_language[language][:3]:
            lines += _catalog_messages(path)
        documents[language] = "\n".join(lines)
    for start, stop in ((0, 1_000), (1_000, 1_000 + _DOCUMENT_CHARS)):
        for document in documents.values():
            if document[start:stop]:
                yield document[start:stop]


@functools.lru_cache(maxsize=None)
def _catalog_messages(path: str) -> tuple[str, ...]:
    import gettext

    try:
        with open(path, "rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog  # msgid -> msgstr
    except (OSError, UnicodeDecodeError, ValueError, LookupError):
        return ()
    return tuple(value for key, value in catalog.items() if key and isinstance(value, str) and value)[:200]


_SOURCES = {"english": _english, "code": _code, "multilingual": _multilingual}

if __name__ == "__main__":  # a quick look: python -m tests.corpus
    for kind, texts in corpus_by_kind(limit_bytes=100_000).items():
        size = sum(len(text.encode("utf-8")) for text in texts)
        sys.stdout.write(f"{kind}: {len(texts)} documents, {size} bytes\n")
