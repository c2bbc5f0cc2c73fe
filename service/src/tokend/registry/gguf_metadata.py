"""The metadata of a GGUF file (llama.cpp's model format): its key/value section, read without the tensors.

    metadata = read_gguf_metadata(Path("ggml-vocab-qwen2.gguf"), prefix="tokenizer.")
    metadata["tokenizer.ggml.model"], len(metadata["tokenizer.ggml.tokens"])    # ('gpt2', 151936)

Layout (little-endian, versions 2 and 3; value types numbered as ggml's `gguf_type`, the `gguf` package's
`GGUFValueType`): magic "GGUF", u32 version, u64 tensor count, u64 key/value count, then per entry a string
key (u64 length + UTF-8), a u32 value type and the value (scalars; strings; arrays as u32 item type + u64
count + items). Arrays come back as lists, except arrays of UINT8 (`bytes`) and INT8 (`array("b")`).
Every length is checked against the file, so a truncated or hostile file is a ModelFormatError, never a
crash or an unbounded allocation.

Why not `gguf.GGUFReader`: it builds a numpy view per array element while opening the file: 20 s for
llama.cpp's Llama 3 vocab file (128,256 tokens + 280,147 merges) on this project's machine, against
0.5 s here. The tests hold this reader to GGUFReader's `contents()` on llama.cpp's vocab files; the
`gguf` package is a test dependency only (nothing here imports it).
"""

from __future__ import annotations

import mmap
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokend.errors import ModelFormatError

__all__ = ["SkippedArray", "read_gguf_metadata"]

_GGUF_MAGIC = 0x46554747  # b"GGUF" read as a little-endian u32
_STRING, _ARRAY = 8, 9
_MAX_NESTING = 4  # arrays of arrays: llama.cpp writes none; a crafted file must not exhaust the stack
# value type -> struct code: UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, UINT64, INT64, FLOAT64
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# item type -> how an array of it is kept: UINT8 as bytes, INT8 as array("b") (a T5 model's
# precompiled_charsmap is a UINT8 array of the whole charsmap: as a list, 8 bytes of pointer per byte)
_BYTE_ARRAYS = {0: bytes, 1: lambda data: array("b", data)}


class _Cursor:
    def __init__(self, data: mmap.mmap, what: str) -> None:
        self.data, self.position, self.what = data, 0, what

    def _advance(self, size: int) -> int:
        start, end = self.position, self.position + size
        if size < 0 or end > len(self.data):
            raise ModelFormatError(f"{self.what} is truncated or corrupt (a value runs past the end at byte {start})")
        self.position = end
        return start

    def take(self, size: int) -> bytes:
        start = self._advance(size)
        return self.data[start : self.position]

    def unpack(self, code: str) -> Any:
        return struct.unpack_from("<" + code, self.data, self._advance(struct.calcsize("<" + code)))[0]

    def string(self) -> str:
        raw = self.take(self.unpack("Q"))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ModelFormatError(f"{self.what}: a string is not UTF-8 ({error})") from None

    def value(self, kind: int, keep: bool, depth: int = 0) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            if depth >= _MAX_NESTING:
                raise ModelFormatError(f"{self.what}: arrays nested more than {_MAX_NESTING} deep at byte {self.position}")
            item_kind, count = self.unpack("I"), self.unpack("Q")
            if item_kind in _SCALARS:
                code = _SCALARS[item_kind]
                start = self._advance(count * struct.calcsize(code))
                if not keep:
                    return None
                if item_kind in _BYTE_ARRAYS:  # a byte an item (a list of ints: 8 bytes of pointer an item)
                    return _BYTE_ARRAYS[item_kind](self.data[start : self.position])
                return list(struct.unpack_from(f"<{count}{code}", self.data, start))
            if count > len(self.data):  # every item takes at least a byte
                raise ModelFormatError(f"{self.what}: an array claims {count} items")
            items = [self.value(item_kind, keep, depth + 1) for _ in range(count)]
            return items if keep else None
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        raise ModelFormatError(f"{self.what}: unknown value type {kind} at byte {self.position}")


@dataclass(frozen=True)
class SkippedArray:
    """An array read_gguf_metadata stepped over (a key outside `arrays`): what it held, not its items."""

    item_type: str  # "str", "int", "float", "bool"
    count: int


# GGUF value type -> the Python type its items would have been
_TYPE_NAMES = {**{kind: "int" for kind in (0, 1, 2, 3, 4, 5, 10, 11)}, 6: "float", 12: "float", 7: "bool", 8: "str", 9: "list"}


def read_gguf_metadata(
    path: Path, *, prefix: str | tuple[str, ...] = "", arrays: frozenset[str] | None = None
) -> dict[str, Any]:
    """The key/value metadata whose keys start with `prefix` (or one of several; ModelFormatError for a file
    that is not GGUF). `arrays`: the only keys whose array values are built (None: all); an array under any
    other key is stepped over like a key outside `prefix` (a 30 M-item array under a key nobody reads
    peaked at 0.5 GB)."""
    what = f"GGUF file {Path(path).name}"
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            raise ModelFormatError(f"{what} is empty") from None
    with mapped:
        cursor = _Cursor(mapped, what)
        if cursor.unpack("I") != _GGUF_MAGIC:
            raise ModelFormatError(f"{what} does not start with the GGUF magic")
        version = cursor.unpack("I")
        if version not in (2, 3):
            raise ModelFormatError(f"{what} has GGUF version {version} (readable: 2 and 3, little-endian)")
        cursor.unpack("Q")  # tensor count: the tensors are not read
        metadata: dict[str, Any] = {}
        for _ in range(cursor.unpack("Q")):
            key = cursor.string()
            kind = cursor.unpack("I")
            keep = key.startswith(prefix)
            if keep and kind == _ARRAY and arrays is not None and key not in arrays:
                header = bytes(cursor.data[cursor.position : cursor.position + 12])
                cursor.value(kind, False)  # stepped over, bounds checked (a short header raises there)
                item_kind, count = struct.unpack("<IQ", header)
                value = SkippedArray(_TYPE_NAMES.get(item_kind, f"type {item_kind}"), count)
            else:
                value = cursor.value(kind, keep)
            if keep:
                if key in metadata:  # the last would win silently; llama.cpp's writer never repeats a key
                    raise ModelFormatError(f"{what} has the key {key[:80]!r} twice")
                metadata[key] = value
        return metadata
