"""minbpe's `.model` format (karpathy/minbpe `Tokenizer.save` / `load`), so models move between tools.

```
minbpe v1
<split pattern, empty for BasicTokenizer>
<number of special tokens>
<special> <id>          (one line each)
<left id> <right id>    (one line per merge; the k-th merge creates id 256 + k)
```

>>> model = load_minbpe_model("minbpe v1\\n\\n0\\n97 97\\n256 97\\n")
>>> model.merges
{(97, 97): 256, (256, 97): 257}
>>> dump_minbpe_model(model) == "minbpe v1\\n\\n0\\n97 97\\n256 97\\n"
True

Not handled: minbpe's `.vocab` file (a lossy, human-readable rendering; minbpe never reads it back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelFormatError

__all__ = ["MinbpeModel", "load_minbpe_model", "dump_minbpe_model"]

_VERSION_LINE = "minbpe v1"


@dataclass(frozen=True)
class MinbpeModel:
    pattern: str  # "" = no pre-splitting (minbpe's BasicTokenizer)
    special_tokens: dict[str, int] = field(default_factory=dict)  # str -> id
    merges: dict[tuple[int, int], int] = field(default_factory=dict)  # (int, int) -> int


def load_minbpe_model(text: str) -> MinbpeModel:
    """Parse the text of a `.model` file; `ModelFormatError` names the line that does not parse."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != _VERSION_LINE:
        found = lines[0][:40] if lines else ""
        raise ModelFormatError(f"minbpe model: first line is {found!r}, expected {_VERSION_LINE!r}")
    if len(lines) < 3:
        raise ModelFormatError("minbpe model: truncated, expected a pattern line and a special-token count")
    pattern = lines[1].strip()
    try:
        n_special = int(lines[2].strip())
        if n_special < 0:
            raise ValueError
    except ValueError:
        raise ModelFormatError(f"minbpe model, line 3: {lines[2][:40]!r} is not a special-token count") from None
    special_tokens: dict[str, int] = {}
    for line_number in range(4, 4 + n_special):
        fields = lines[line_number - 1].strip().split() if line_number - 1 < len(lines) else []
        if len(fields) != 2 or not fields[1].isdigit():
            raise ModelFormatError(f"minbpe model, line {line_number}: expected `<special> <id>`")
        if fields[0] in special_tokens:  # the last would win silently
            raise ModelFormatError(f"minbpe model, line {line_number}: special token {fields[0][:40]!r} is given twice")
        special_tokens[fields[0]] = int(fields[1])
    merges: dict[tuple[int, int], int] = {}
    next_id = 256
    for line_number, line in enumerate(lines[3 + n_special :], start=4 + n_special):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise ModelFormatError(f"minbpe model, line {line_number}: {line[:40]!r} is not `<id> <id>`")
        left, right = int(fields[0]), int(fields[1])
        if left >= next_id or right >= next_id:
            raise ModelFormatError(
                f"minbpe model, line {line_number}: merge ({left}, {right}) uses an id not defined yet "
                f"(ids so far end at {next_id - 1})"
            )
        merges[(left, right)] = next_id
        next_id += 1
    return MinbpeModel(pattern=pattern, special_tokens=special_tokens, merges=merges)


def dump_minbpe_model(model: MinbpeModel) -> str:
    """The text of a `.model` file; merges are written in id order (ids must be 256, 257, ...)."""
    if "\n" in model.pattern:
        raise ModelFormatError("minbpe model: the split pattern must be a single line")
    lines = [_VERSION_LINE, model.pattern, str(len(model.special_tokens))]
    for special, token_id in model.special_tokens.items():
        if not special or any(ch.isspace() for ch in special):
            raise ModelFormatError(f"minbpe model: special token {special!r} must be non-empty without whitespace")
        lines.append(f"{special} {token_id}")
    for expected_id, ((left, right), new_id) in enumerate(sorted(model.merges.items(), key=lambda i: i[1]), 256):
        if new_id != expected_id:
            raise ModelFormatError(
                f"minbpe model: merge ids must be 256, 257, ... without gaps; found {new_id} where {expected_id} belongs"
            )
        lines.append(f"{left} {right}")
    return "\n".join(lines) + "\n"
