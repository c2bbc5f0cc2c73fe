"""sentencepiece's precompiled character map: the normalization rules (`nmt_nfkc`, `nfkc_cf`, ...) as data.

The blob inside a model's NormalizerSpec is `<u32 little-endian trie size><double-array trie><strings>`:
a darts-clone double array whose keys are UTF-8 input sequences and whose values are offsets into the
strings area, where the replacement is stored NUL-terminated. sentencepiece rewrites the longest key that
prefixes the remaining input (`Normalizer::NormalizePrefix`).

    charsmap = PrecompiledCharsMap(model.normalizer.precompiled_charsmap)    # an nmt_nfkc model's
    charsmap.longest_match("ｈｅｌｌｏ".encode(), 0)                            # (3, b'h')

A darts-clone unit is a uint32: bit 8 `has_leaf`, bits 0-7 plus bit 31 `label`, bits 0-30 `value` (of a
leaf unit), and `offset` = (unit >> 10) << ((unit & 0x200) >> 6). Walking key byte b from node p goes to
p ^ offset(unit[p]) ^ b, whose label must equal b; a node with has_leaf has its value at p ^ offset.

This module is the readable reference (used by the Python reference encoder and the tests); the native core
reads the same blob in C (service/native/sp_normalizer.c). Every index is bounds-checked, so a corrupted
blob gives wrong rules at worst, never a crash; `ModelFormatError` when the header itself is inconsistent.
As sentencepiece 0.2.3: only the first 32 keys on the path count, and a key whose replacement offset lies
outside the string block means "no rule" (the character is kept).
"""

from __future__ import annotations

import struct

from ...errors import ModelFormatError

__all__ = ["PrecompiledCharsMap", "MAX_KEY_BYTES"]

# Keys longer than this are not looked for, here and in the native core (SP_MAX_CHARSMAP_KEY): real keys are a
# few characters, and a crafted chain of 20,000 trie nodes made each position's walk 20,000 steps. Only such a
# crafted file differs from sentencepiece, which walks on.
MAX_KEY_BYTES = 256


class PrecompiledCharsMap:
    """Longest-match lookups in a precompiled charsmap blob."""

    def __init__(self, blob: bytes, *, what: str = "normalizer charsmap") -> None:
        blob = bytes(blob)
        if len(blob) <= 4:
            raise ModelFormatError(f"{what} is broken: {len(blob)} bytes is too short for a charsmap")
        (trie_size,) = struct.unpack_from("<I", blob, 0)
        if trie_size == 0 or trie_size > len(blob) - 4 or trie_size % 4:
            raise ModelFormatError(f"{what} is broken: trie size {trie_size} does not fit {len(blob)} bytes")
        self._units = struct.unpack_from(f"<{trie_size // 4}I", blob, 4)  # darts-clone units
        self._strings = blob[4 + trie_size :]  # replacements, NUL-terminated

    def longest_match(self, text: bytes, pos: int) -> tuple[int, bytes] | None:
        """(length of the longest key at text[pos:], its replacement), or None when no key prefixes it."""
        units = self._units
        n_units = len(units)
        node = _offset(units[0])
        best: tuple[int, int] | None = None  # (length, offset of the replacement)
        found = 0
        for index in range(pos, min(len(text), pos + MAX_KEY_BYTES)):
            if found == 32:  # sentencepiece looks at the first 32 keys only (kMaxTrieResultsSize)
                break
            byte = text[index]
            node ^= byte
            if node >= n_units:
                break
            unit = units[node]
            if (unit & 0x800000FF) != byte:  # label
                break
            node ^= _offset(unit)
            if unit & 0x100:  # has_leaf: the value sits in the unit at the new position
                if node >= n_units:
                    break
                found += 1
                best = (index + 1 - pos, units[node] & 0x7FFFFFFF)
        # A replacement outside the string block makes the longest key no rule at all (sentencepiece 0.2.3).
        if best is None or best[1] >= len(self._strings):
            return None
        length, offset = best
        end = self._strings.find(b"\0", offset)
        return length, self._strings[offset : end if end >= 0 else len(self._strings)]


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & 0x200) >> 6)
