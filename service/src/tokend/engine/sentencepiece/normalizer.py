"""sentencepiece's normalizer, step by step: the readable reference of what the native core does.

    >>> Normalizer(NormalizerSpec(name="identity", remove_extra_whitespaces=False)).normalize(b"Hello  world")
    b'\\xe2\\x96\\x81Hello\\xe2\\x96\\x81\\xe2\\x96\\x81world'

`normalize(text)` follows `Normalizer::Normalize` (src/normalizer.cc) exactly:
1. with `remove_extra_whitespaces`, leading input that normalizes to " " is dropped;
2. `add_dummy_prefix` puts one whitespace mark first (last, with `treat_whitespace_as_suffix`), unless the
   input is empty (or only whitespace, when extra whitespace is removed);
3. at each position the longest user-defined piece is copied verbatim, else the longest charsmap rule is
   applied, else one UTF-8 character is copied (a malformed byte becomes U+FFFD);
4. with `remove_extra_whitespaces`, spaces at the start of a rule's output are dropped while the output so
   far ends with a space, and trailing whitespace marks are removed at the end;
5. with `escape_whitespaces`, every space (0x20) of the output becomes U+2581 `▁`.

Only the byte 0x20 is whitespace here; tabs and newlines become spaces only if the charsmap says so
(nmt_nfkc does; identity has no charsmap). Not handled: the offsets back to the input (norm_to_orig).
"""

from __future__ import annotations

from collections.abc import Iterable

from .charsmap import PrecompiledCharsMap
from .model_file import NormalizerSpec

__all__ = ["Normalizer", "WHITESPACE_MARK", "utf8_char_length", "decode_utf8_char"]

WHITESPACE_MARK = "\u2581".encode("utf-8")  # ▁
_REPLACEMENT = "\ufffd".encode("utf-8")


def utf8_char_length(lead: int) -> int:
    """sentencepiece's OneCharLen: the length a lead byte announces (1 for continuation bytes)."""
    return b"\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[lead >> 4]


def decode_utf8_char(data: bytes, pos: int) -> tuple[bool, int]:
    """(valid, length) of the character at data[pos:], by sentencepiece's DecodeUTF8 / IsValidDecodeUTF8.

    Invalid means: a length-1 step. Encoded surrogates, overlong forms and code points past U+10FFFF are
    invalid; a literal U+FFFD is valid.
    """
    lead = data[pos]
    if lead < 0x80:
        return True, 1
    left = len(data) - pos
    trail = lambda k: 0x80 <= data[pos + k] < 0xC0  # noqa: E731
    if left >= 2 and lead & 0xE0 == 0xC0:
        cp = ((lead & 0x1F) << 6) | (data[pos + 1] & 0x3F)
        if trail(1) and cp >= 0x80:
            return True, 2
    elif left >= 3 and lead & 0xF0 == 0xE0:
        cp = ((lead & 0x0F) << 12) | ((data[pos + 1] & 0x3F) << 6) | (data[pos + 2] & 0x3F)
        if trail(1) and trail(2) and cp >= 0x800 and not 0xD800 <= cp < 0xE000:
            return True, 3
    elif left >= 4 and lead & 0xF8 == 0xF0:
        cp = ((lead & 0x07) << 18) | ((data[pos + 1] & 0x3F) << 12) | ((data[pos + 2] & 0x3F) << 6) | (data[pos + 3] & 0x3F)
        if trail(1) and trail(2) and trail(3) and 0x10000 <= cp <= 0x10FFFF:
            return True, 4
    return False, 1


class UserDefinedMatcher:
    """Longest user-defined piece at a position (sentencepiece's PrefixMatcher), by bytes."""

    def __init__(self, pieces: Iterable[str]) -> None:
        by_first: dict[int, list[bytes]] = {}
        for piece in pieces:
            data = piece.encode("utf-8")
            by_first.setdefault(data[0], []).append(data)
        self._by_first = {first: sorted(group, key=len) for first, group in by_first.items()}

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def match(self, data: bytes, pos: int) -> int:
        """Length of the longest user-defined piece at data[pos:], 0 when none (as sentencepiece 0.2.3, the
        longest of the first 64 that match, shortest first)."""
        matches = [len(c) for c in self._by_first.get(data[pos], ()) if data.startswith(c, pos)]
        return max(matches[:64], default=0)


class Normalizer:
    """`normalize(bytes) -> bytes` as sentencepiece's Normalizer does (see module docstring)."""

    def __init__(
        self,
        spec: NormalizerSpec,
        *,
        treat_whitespace_as_suffix: bool = False,
        user_defined: Iterable[str] = (),
    ) -> None:
        self.spec = spec
        self.treat_whitespace_as_suffix = treat_whitespace_as_suffix
        self._charsmap = PrecompiledCharsMap(spec.precompiled_charsmap) if spec.precompiled_charsmap else None
        self._user_defined = UserDefinedMatcher(user_defined)

    def normalize_prefix(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """(normalized output, input bytes consumed) for the input at data[pos:] (NormalizePrefix)."""
        if self._user_defined:
            length = self._user_defined.match(data, pos)
            if length:
                return data[pos : pos + length], length
        if self._charsmap is not None:
            match = self._charsmap.longest_match(data, pos)
            if match is not None:
                length, replacement = match
                return replacement, length
        valid, length = decode_utf8_char(data, pos)
        if not valid:
            return _REPLACEMENT, 1
        return data[pos : pos + length], length

    def normalize(self, data: bytes) -> bytes:
        spec = self.spec
        remove_extra = spec.remove_extra_whitespaces
        space = WHITESPACE_MARK if spec.escape_whitespaces else b" "
        pos, end = 0, len(data)
        if remove_extra:
            while pos < end:
                piece, consumed = self.normalize_prefix(data, pos)
                if piece != b" ":
                    break
                pos += consumed
        if pos == end:
            return b""
        out = bytearray()
        if not self.treat_whitespace_as_suffix and spec.add_dummy_prefix:
            out += space
        is_prev_space = remove_extra
        while pos < end:
            piece, consumed = self.normalize_prefix(data, pos)
            while is_prev_space and piece.startswith(b" "):
                piece = piece[1:]
            if piece:
                out += piece.replace(b" ", WHITESPACE_MARK) if spec.escape_whitespaces else piece
                is_prev_space = piece.endswith(b" ")
            pos += consumed
            if not remove_extra:
                is_prev_space = False
        if remove_extra:
            while out.endswith(space):
                del out[-len(space) :]
        if self.treat_whitespace_as_suffix and spec.add_dummy_prefix:
            out += space
        return bytes(out)
