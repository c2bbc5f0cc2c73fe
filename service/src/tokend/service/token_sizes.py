"""Bytes per token id of a model, so that the size of a decoded answer is known before it is built.

A Decode request of 2,097,152 copies of a 128-byte token is 8 MiB of ids but 268 MB of answer; the service
works out the answer's size first (:func:`decoded_bytes`) and refuses what could not be sent. Most requests
are settled by a bound (ids × the model's longest token); only a request whose bound is over the limit is
summed exactly, from a table of token lengths built once per Encoding (from the engine contract's
``decode_single_token_bytes``; measured 0.7 s for o200k_base's 200,000 tokens) and kept as long as the
Encoding lives. The exact sum costs ~30 ns per id; it goes a slice of ``SUM_SLICE_IDS`` ids at a time, because
one ``sum`` over 2,097,152 ids held the GIL for ~60 ms while every other call of the worker waited (the
worker's largest GIL hold under hostile load, bench/service_hostile.py). The sum stays exact even far past
``enough``: the refusal states the whole answer's size. Ids in a native uint32 buffer (a large Decode request's,
read by the gRPC server without protobuf) are summed natively instead, in one pass without the GIL
(``summed_lengths``, native/length_sums.c: ~1 ns per id, no Python int made).

    >>> from tokend import get_encoding
    >>> decoded_bytes(get_encoding("cl100k_base"), [[15339, 1917]], enough=0)   # b"hello" + b" world"
    11
"""

from __future__ import annotations

import threading
import weakref
from array import array
from collections.abc import Sequence
from typing import Any

from tokend.engine._native import summed_lengths
from tokend.service.limits import SUM_SLICE_IDS

__all__ = ["decoded_bytes", "longest_token_bytes", "token_lengths"]

_lock = threading.Lock()
_tables: weakref.WeakKeyDictionary[Any, array] = weakref.WeakKeyDictionary()
_longest: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def longest_token_bytes(encoding: Any) -> int:
    """Bytes of the model's longest token (special tokens included). The engine's encodings keep it
    (``_longest_token_bytes``, no pass over the vocabulary: sorting o200k_base's tokens to find it held the
    worker's GIL ~70 ms on the first Decode of every model version); another engine's is measured once."""
    known = getattr(encoding, "_longest_token_bytes", None)
    if isinstance(known, int):
        return known
    longest = _longest.get(encoding)
    if longest is None:
        ordinary = max(map(len, encoding.token_byte_values()), default=0)
        special = max((len(token.encode("utf-8")) for token in encoding.special_tokens), default=0)
        longest = _longest[encoding] = max(ordinary, special)
    return longest


def token_lengths(encoding: Any) -> array:
    """``lengths[id]`` = bytes of token ``id`` (0 for ids the model does not define)."""
    table = _tables.get(encoding)
    if table is not None:
        return table
    with _lock:
        table = _tables.get(encoding)
        if table is None:
            table = array("I", bytes(4 * (encoding.max_token_value + 1)))
            decode = encoding.decode_single_token_bytes
            for token in range(len(table)):
                try:
                    table[token] = len(decode(token))
                except (KeyError, ValueError):  # a gap between ranks and special tokens
                    pass
            _tables[encoding] = table
    return table


def decoded_bytes(encoding: Any, inputs: Sequence[Sequence[int]], *, enough: int) -> int:
    """Bytes that decoding ``inputs`` gives, or an upper bound of them when that bound is at most ``enough``.
    Unknown ids count 0 (decoding them raises later)."""
    bound = sum(map(len, inputs)) * longest_token_bytes(encoding)
    if bound <= enough:
        return bound
    table = token_lengths(encoding)
    total = 0
    for ids in inputs:
        if isinstance(ids, memoryview) and ids.format == "I" and ids.c_contiguous:
            total += summed_lengths(table, ids)
        elif len(ids) <= SUM_SLICE_IDS:
            total += _exact(table, ids)
        else:
            for start in range(0, len(ids), SUM_SLICE_IDS):
                total += _exact(table, ids[start : start + SUM_SLICE_IDS])
    return total


def _exact(table: array, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    if max(ids) < len(table):
        return sum(map(table.__getitem__, ids))
    size = len(table)
    return sum(table[token] for token in ids if token < size)
