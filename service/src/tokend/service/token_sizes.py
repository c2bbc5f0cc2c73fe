"""Bytes per token id of a model, so that the size of a decoded answer is known before it is built.

A Decode request of 2,097,152 copies of a 128-byte token is 8 MiB of ids but 268 MB of answer; the service
sums the token lengths first (:func:`decoded_bytes`, ~30 ns per id) and refuses what could not be sent.
The table is built once per Encoding (~0.3 s for 200,000 tokens) from the engine contract's
``decode_single_token_bytes`` and kept as long as the Encoding lives.

    >>> from tokend import get_encoding
    >>> decoded_bytes(get_encoding("cl100k_base"), [15339, 1917])   # b"hello" + b" world"
    11
"""

from __future__ import annotations

import threading
import weakref
from array import array
from collections.abc import Sequence
from typing import Any

__all__ = ["decoded_bytes", "token_lengths"]

_lock = threading.Lock()
_tables: weakref.WeakKeyDictionary[Any, array] = weakref.WeakKeyDictionary()


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


def decoded_bytes(encoding: Any, ids: Sequence[int]) -> int:
    """Bytes that decoding ``ids`` gives (unknown ids count 0; decoding them raises later)."""
    if not ids:
        return 0
    table = token_lengths(encoding)
    if max(ids) < len(table):
        return sum(map(table.__getitem__, ids))
    size = len(table)
    return sum(table[token] for token in ids if token < size)
