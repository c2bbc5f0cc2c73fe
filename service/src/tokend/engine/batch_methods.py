"""`ByteLevelBatchMethods`: the byte-level `Encoding`'s batch calls, on the native core's threads.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> enc.encode_ordinary_batch(["hello world", "hi"], num_threads=2), enc.count_batch(["hello world", "hi"])
([[15339, 1917], [6151]], [2, 1])

The texts become the core's segments in the calling thread (normalized, split at special and added tokens);
the core encodes them all in one call that releases the GIL for the whole native work and runs it on
min(num_threads, usable CPUs) threads (service/native/batch_encode.c), each with its own piece cache. Same
ids as one text at a time; errors name the item (`.item` = its index). A mixin of `Encoding` only: it
reads the encoding's core, splitter and special-token state.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import AbstractSet, Literal

from .special_tokens import is_default_policy
from .surrogates import fix_surrogates

__all__ = ["ByteLevelBatchMethods", "BATCH_MAX_FLAGS"]

_EMPTY: frozenset[str] = frozenset()
BATCH_MAX_FLAGS = 16  # strings the core's batch looks for at most (batch_encode.h, TK_BATCH_MAX_NEEDLES)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def _reassemble(layouts: list[list[str | int]], results: list, counting: bool) -> list:
    """Per text, its segments' results (in order, from one flat list) with the token ids between them."""
    out: list = []
    position = 0
    for layout in layouts:
        if counting:
            total = 0
            for part in layout:
                if type(part) is str:
                    total += results[position]
                    position += 1
                else:
                    total += 1
            out.append(total)
        else:
            ids: list[int] = []
            for part in layout:
                if type(part) is str:
                    ids += results[position]
                    position += 1
                else:
                    ids.append(part)
            out.append(ids)
    return out


class ByteLevelBatchMethods:
    """Mixin of `Encoding`: `encode_ordinary_batch`, `encode_batch`, `count_batch` (see the module docstring)."""

    __slots__ = ()

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        """`encode_ordinary` of each text, on up to `num_threads` threads (see `_batch`).

        >>> from tokend import get_encoding
        >>> get_encoding("cl100k_base").encode_ordinary_batch(["hello world", "hi"], num_threads=2)
        [[15339, 1917], [6151]]
        """
        return self._batch(text, None, num_threads, counting=False)

    def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[list[int]]:
        """`encode` of each text on up to `num_threads` threads; a disallowed special token raises with
        `.item` = its index (before any text is encoded)."""
        text = text if isinstance(text, list) else list(text)  # read twice below (an iterator only once)
        allowed = [self._check_specials(item, allowed_special, disallowed_special, index)
                   for index, item in enumerate(text)]
        return self._batch(text, allowed, num_threads, counting=False)

    def count_batch(
        self,
        texts: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """`count` of each text on up to `num_threads` threads; a disallowed special token raises with
        `.item` = its index."""
        texts = texts if isinstance(texts, list) else list(texts)  # read twice below (an iterator only once)
        if is_default_policy(allowed_special, disallowed_special) and self._batch_flags_specials:
            return self._count_batch_default_policy(texts, num_threads)
        allowed = [self._check_specials(item, allowed_special, disallowed_special, index)
                   for index, item in enumerate(texts)]
        return self._batch(texts, allowed, num_threads, counting=True)

    def _count_batch_default_policy(self, texts: list[str], num_threads: int) -> list[int]:
        """count_batch under the default policy, the special-token check done by the workers.

        Checking every text before the batch ran in this thread with the GIL held, a serial part that kept
        2 threads from 2x; here the workers flag each text holding one of the tokens' prefixes (the first
        test of `may_occur`) and only the flagged texts are checked, after the counts: a disallowed token
        raises as before (the first such text's index), a prefix that is no token leaves the count of
        the text as plain text, which it is under this policy.
        """
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        threads = min(num_threads, _usable_cpus())
        prefixes = self._specials.prefixes
        try:
            counts, flagged = self._core.encode_batch(texts, threads, count=True, flag=prefixes)
        except UnicodeEncodeError:  # lone surrogates: repaired as count does (no token holds one)
            counts, flagged = self._core.encode_batch([fix_surrogates(item) for item in texts], threads,
                                                      count=True, flag=prefixes)
        for index in flagged:
            self._check_specials(texts[index], _EMPTY, "all", index)
        return counts

    def _batch(self, texts: Sequence[str], allowed: list[frozenset[str]] | None, num_threads: int, *,
               counting: bool) -> list:
        """Ids (or counts) of each text, `allowed[i]` being the special tokens allowed in text i (None: none).

        The texts become the core's segments here (normalized, split at special and added tokens); the core
        encodes all of them in one call that releases the GIL for the whole native work and runs it on
        min(num_threads, usable CPUs) threads (fewer for a small batch; service/native/batch_encode.c), each
        with its own piece cache. Same ids as one text at a time. Python splitting (a pattern outside the
        compiler's subset) runs in this thread, one text after the other.
        """
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        texts = texts if isinstance(texts, list) else list(texts)
        if self._native_splitter is None:
            return self._batch_in_python(texts, allowed, counting)
        threads = min(num_threads, _usable_cpus())
        plain = not self._uses_pipeline and self._model.normalizer is None and not self._prefix_space
        if plain and (allowed is None or not any(allowed)):
            try:
                return self._core.encode_batch(texts, threads, count=counting)
            except UnicodeEncodeError:  # lone surrogates: repaired as encode does, then all over again
                return self._core.encode_batch([fix_surrogates(item) for item in texts], threads, count=counting)
        try:
            layouts = [self._core_items(item, _EMPTY if allowed is None else allowed[index])
                       for index, item in enumerate(texts)]
            results = self._core.encode_batch([part for layout in layouts for part in layout if type(part) is str],
                                              threads, count=counting)
        except UnicodeEncodeError:
            return self._batch([fix_surrogates(item) for item in texts], allowed, num_threads, counting=counting)
        return _reassemble(layouts, results, counting)

    def _batch_in_python(self, texts: list[str], allowed: list[frozenset[str]] | None, counting: bool) -> list:
        if allowed is None:
            one = self.count_ordinary if counting else self.encode_ordinary
            return [one(item) for item in texts]
        one = self.count if counting else self.encode
        return [one(item, allowed_special=allowed[index], disallowed_special=()) for index, item in enumerate(texts)]
