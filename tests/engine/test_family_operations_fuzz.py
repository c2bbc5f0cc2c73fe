"""Seeded differential fuzzing of the families beside OpenAI's and of the operations built on encode, each against
its family's reference library (never ids of ours):

- tokenizer.json (Llama 3, Qwen 3, GPT-2, a DeepSeek-V3-style Sequence of Splits) against `tokenizers`, added
  tokens matched in text as `tokenizers` does (`allowed_special="all"`); Tekken (Mistral NeMo) against
  mistral-common; SentencePiece (Mistral v1 / v3, an nmt_nfkc model, Unigram Japanese) against `sentencepiece`;
- texts of support/rule_texts.py: contractions in every case, whitespace runs of every kind, digit runs,
  normalization-sensitive text, controls, lone surrogates (the reference gets the text as tiktoken repairs it:
  a lone surrogate becomes U+FFFD, a pair the character it encodes), special-token text, the empty text, and one
  text over 64 KiB per family;
- per text: ids and count; decode of the reference's ids against the reference's decode; the same ids fed to
  `decoder()` one at a time give `decode`; `truncate` (random budget and side) keeps a prefix / suffix whose ids
  are the reference's ids of it, within the budget, and maximal: the text to the next cut point does not fit;
  `chunk` (random budget, overlap and preference) gives chunks that cover the text with no gap, each within the
  budget with the reference's ids of its text, each ending at the furthest cut point the budget allows or the
  separator `prefer` moves it back to (before them only when their own ids overshoot), each next one starting
  where the overlap puts it. Cut points come from the reference alone (`reference_grid`: where the reference's decode of a prefix
  of its ids spells a prefix of the text), for the texts it decodes back to themselves. A family whose
  normalizer rewrites a text may refuse offsets for it (OffsetsUnavailableError), and a budget too small for
  some stretch has no chunking (InvalidBudgetError): both are documented answers, not differences.

Run as a script (`PYTHONPATH=.:tests python tests/engine/test_family_operations_fuzz.py SECONDS`), the same checks
go on with new seeds until the time is up. Helper fuzz21 ran them on main at a2ee55d (see docs/decisions.md).
"""

from __future__ import annotations

import functools
import json
import math
import random
import sys
from bisect import bisect_left, bisect_right

import pytest

from support import tokenizer_json
from support.rule_texts import long_piece, rule_text
from tokend.engine import Encoding, parse_tokenizer_json, read_tekken_json
from tokend.engine.chunking import PREFERENCES, SEPARATOR_WINDOW
from tokend.engine.separators import last_separator_cut
from tokend.errors import InvalidBudgetError, OffsetsUnavailableError

TOKENIZER_JSON = {
    "llama3": tokenizer_json.llama3_tokenizer_json,
    "qwen3": tokenizer_json.qwen3_tokenizer_json,
    "gpt2": tokenizer_json.gpt2_tokenizer_json,
    "deepseek_v3": tokenizer_json.deepseek_v3_style_tokenizer_json,
}
SENTENCEPIECE = ("mistral_v1", "mistral_v3", "nmt_nfkc", "kyoto_unigram")
FAMILIES = (*TOKENIZER_JSON, "tekken", *(f"sentencepiece:{name}" for name in SENTENCEPIECE))


class Family:
    """Ours beside the reference: `encode(text)` / `decode(ids)` of the reference, the policy for ours."""

    def __init__(self, ours, encode, decode, policy: dict) -> None:
        self.ours, self.encode, self.decode, self.policy = ours, encode, decode, policy


@functools.lru_cache(maxsize=None)
def family(name: str) -> Family:
    if name in TOKENIZER_JSON:
        import tokenizers

        document = TOKENIZER_JSON[name]()
        reference = tokenizers.Tokenizer.from_str(json.dumps(document))
        return Family(Encoding.from_model(parse_tokenizer_json(document, name=name).model),
                      lambda text: reference.encode(text, add_special_tokens=False).ids,
                      lambda ids: reference.decode(ids, skip_special_tokens=False), dict(allowed_special="all"))
    if name == "tekken":
        from pathlib import Path

        import mistral_common
        from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
        reference = Tekkenizer.from_file(path)
        return Family(Encoding.from_model(read_tekken_json(path.read_bytes(), name="mistral-nemo").model),
                      lambda text: reference.encode(text, bos=False, eos=False),
                      lambda ids: reference.decode(ids, special_token_policy=SpecialTokenPolicy.KEEP),
                      dict(disallowed_special=()))
    from tests.engine.sentencepiece.models import oracle, ours

    model = name.removeprefix("sentencepiece:")
    return Family(ours(model), oracle(model).encode, oracle(model).decode, dict(disallowed_special=()))


def repaired(text: str) -> str:
    """The text as the engine encodes it (tiktoken's rule): lone surrogates -> U+FFFD, pairs joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def check_text(fam: Family, text: str, rng: random.Random, *, operations: bool = True) -> None:
    ours, policy = fam.ours, fam.policy
    expected = fam.encode(repaired(text))
    assert ours.encode(text, **policy) == expected
    assert ours.count(text, **policy) == len(expected)
    decoded = ours.decode(expected)
    assert decoded == fam.decode(expected)
    if not operations:
        return
    grid = reference_grid(fam, text, expected)
    decoder = ours.decoder()
    assert "".join(decoder.feed([token]) for token in expected) + decoder.flush() == decoded

    budget, side = rng.randrange(1, len(expected) + 2), rng.choice(["right", "left"])
    try:
        kept = ours.truncate(text, budget, side, **policy)
    except OffsetsUnavailableError:
        pass
    else:
        assert kept.text == text[kept.start : kept.end] and (kept.start == 0 if side == "right" else kept.end == len(text))
        assert kept.ids == fam.encode(repaired(kept.text)) and len(kept.ids) <= budget
        assert kept.total_tokens == len(expected)
        if grid is not None and len(expected) > budget:  # maximal: the next cut point's text does not fit
            positions = [position for position, _ in grid]
            if side == "right":
                assert kept.end in positions
                after = positions[bisect_right(positions, kept.end)]
                assert len(fam.encode(text[:after])) > budget, (kept.end, after)
            else:
                assert kept.start in positions
                before = positions[bisect_left(positions, kept.start) - 1]
                assert len(fam.encode(text[before:])) > budget, (kept.start, before)

    budget, prefer = rng.randrange(2, 24), rng.choice(["paragraph", "sentence", "whitespace", "token"])
    overlap = rng.choice([0, 0, 1, budget // 2])
    try:
        chunks = ours.chunk(text, budget, overlap, prefer, **policy)
    except (OffsetsUnavailableError, InvalidBudgetError):
        return
    if not text:
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.ids == fam.encode(repaired(chunk.text)) and len(chunk.ids) <= budget
    for previous, chunk in zip(chunks, chunks[1:]):  # no gap, progress
        assert previous.start < chunk.start <= previous.end < chunk.end
    if overlap == 0:
        assert "".join(chunk.text for chunk in chunks) == text
    if grid is not None:
        check_chunk_cuts(fam, text, grid, chunks, budget, overlap, prefer)


def reference_grid(fam: Family, text: str, ids: list[int]) -> list[tuple[int, int]] | None:
    """The cut grid of truncation.py / chunking.py from the reference alone: (character position, tokens of `ids`
    before it) for 0 and for every token of the reference's ids of `text` that ends on a character boundary (the
    reference's decode of the ids up to it spells the text up to there), in order. None for a text whose decode
    is not the text itself (a normalizer rewrote it: no offsets), or that holds U+FFFD or a surrogate (a prefix
    ending inside a character decodes to U+FFFD, which such a text could hold there)."""
    if "\ufffd" in text or repaired(text) != text or fam.decode(ids) != text:
        return None
    grid = [(0, 0)]
    for count in range(1, len(ids) + 1):
        spelled = fam.decode(ids[:count])
        if text.startswith(spelled) and len(spelled) >= grid[-1][0]:
            grid.append((len(spelled), count))
    return grid


def check_chunk_cuts(fam: Family, text: str, grid, chunks, budget: int, overlap: int, prefer: str) -> None:
    """Each chunk ends at the furthest cut point the whole text's ids put within the budget from its start (never
    later), moved back to the last separator of the strongest kind `prefer` allows in the budget's last half when
    that text's own ids fit (chunking.py's "Cut choice"; where separators lie is separators.py's, held to its own
    tests; the rule texts' special tokens hold no separator, so cuts inside special text are not ruled out here),
    else to an earlier cut point whose own ids fit; it ends on a cut point or a separator. Each next chunk starts at the
    latest cut point leaving `overlap` tokens of the whole text's ids before the previous end (the cut after the
    previous start when there is none), or at that end when the text from there to the next cut does not fit."""
    positions, counts = [position for position, _ in grid], [count for _, count in grid]

    def tokens_before(position: int) -> int:
        return counts[bisect_right(positions, position) - 1]

    previous = None
    for chunk in chunks:
        least = chunk.start if previous is None else max(chunk.start, previous.end)
        first = positions[bisect_right(positions, least)]  # the nearest end that makes progress
        furthest = positions[bisect_right(counts, tokens_before(chunk.start) + budget) - 1]
        estimate = max(first, furthest)
        assert chunk.end <= estimate, (chunk.start, chunk.end, estimate)
        if chunk.end < estimate and prefer == "token":
            assert chunk.end in positions and len(fam.encode(text[chunk.start : estimate])) > budget, (
                chunk.start, chunk.end, estimate)
        if estimate < len(text):  # moved back to the last separator of the strongest kind in the budget's last half
            half = tokens_before(chunk.start) + math.ceil(budget * SEPARATOR_WINDOW) - 1
            low = max(positions[bisect_right(counts, half) - 1], least)
            found = (last_separator_cut(text, kind, low, estimate) for kind in PREFERENCES[prefer])
            cut = next((cut for cut in found if cut is not None), estimate)
            if len(fam.encode(text[chunk.start : cut])) <= budget:
                assert chunk.end == cut, (chunk.start, chunk.end, cut, prefer)
        if chunk.end not in positions:  # inside a token: a separator of a kind `prefer` allows
            kinds = PREFERENCES[prefer]
            assert any(last_separator_cut(text, kind, chunk.start, chunk.end) == chunk.end for kind in kinds), (
                chunk.start, chunk.end, prefer)
        if previous is not None and overlap:
            target = tokens_before(previous.end) - overlap
            start = positions[max(bisect_right(counts, target) - 1, 0)]
            if start <= previous.start:
                start = positions[bisect_right(positions, previous.start)]
            start = min(start, previous.end)
            assert chunk.start in (start, previous.end), (chunk.start, start, previous.end)
            if chunk.start != start:  # no room for the overlap: the text from there to the next cut is too long
                after = positions[bisect_right(positions, previous.end)]
                assert len(fam.encode(text[start:after])) > budget, (start, previous.end, after)
        previous = chunk


@pytest.mark.parametrize("name", FAMILIES)
def test_rule_texts_and_operations_give_the_references_ids(name):
    fam, rng = family(name), random.Random(f"fuzz21-{name}")
    for _ in range(150):
        text = rule_text(rng)
        check_text(fam, text, rng)
    check_text(fam, long_piece(rng), rng, operations=False)


if __name__ == "__main__":
    import runpy
    import time
    from pathlib import Path

    # Run as a script, this directory comes first on sys.path, and its sentencepiece/ (the tests) would stand
    # for the library.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
    runpy.run_path(str(Path(__file__).parents[1] / "conftest.py"))
    seconds, start, rounds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0, time.monotonic(), 0
    while time.monotonic() - start < seconds:
        name = FAMILIES[rounds % len(FAMILIES)]
        rng = random.Random(f"fuzz21-long-{rounds}")
        for _ in range(200):
            text = rule_text(rng)
            try:
                check_text(family(name), text, rng)
            except AssertionError:
                print(f"{name}: a difference on {text!r}")
                raise
        if rounds % 20 == 0:
            check_text(family(name), long_piece(rng), rng, operations=False)
        rounds += 1
    print(f"{rounds} rounds of 200 texts, no difference")
