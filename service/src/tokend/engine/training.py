"""Training a byte-level BPE (minbpe's RegexTokenizer algorithm) with incremental pair counts.

>>> result = train("aaabdaaabac", 256 + 3, pattern=None)  # minbpe's BasicTokenizer example
>>> result.merges
{(97, 97): 256, (256, 97): 257, (257, 98): 258}
>>> result.encoding.encode("aaabdaaabac")
[258, 100, 258, 97, 99]

Algorithm: pre-split every text with `pattern` and count each distinct chunk once (`Counter`); keep
`pair -> count` (weighted by chunk frequency) and `pair -> chunks containing it`; each merge rewrites only
the chunks that contain the pair and updates the counts of the pairs in those chunks (no full recount).
The best pair comes from a heap with lazy invalidation.

Tie-break (deterministic, documented): highest count first; among equal counts, the pair with the larger
first id, then the larger second id. Preferring larger ids extends recently created tokens, which is what
reproduces minbpe's worked example above (minbpe itself breaks ties by first occurrence in the text).

A pair whose bytes already exist as a token (reachable when different chunks merged in different orders)
is skipped: ranks map bytes to one id, so a second id for the same bytes could never be produced.

Not handled: streaming corpora larger than memory; `pattern=None` (no pre-splitting) on large texts is slow
(every merge rewrites the single huge chunk) — it exists for minbpe's small worked examples.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from heapq import heapify, heappop, heappush


from .encoding import Encoding
from .merges import merges_to_ranks
from .patterns import GPT4_PATTERN

__all__ = ["train", "TrainingResult", "NO_SPLIT_PATTERN"]

# The pattern given to the resulting Encoding when training without pre-splitting.
NO_SPLIT_PATTERN = r"[\s\S]+"


@dataclass(frozen=True)
class TrainingResult:
    encoding: Encoding
    merges: dict[tuple[int, int], int]  # (int, int) -> int, in creation order


def train(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    pattern: str | None = GPT4_PATTERN,
    special_tokens: Mapping[str, int] | Iterable[str] | None = None,
    name: str = "trained",
    progress: Callable[[int, int], None] | None = None,
) -> TrainingResult:
    """Learn `vocab_size - 256` merges from `texts`; `progress(done_merges, total_merges)` after each one.

    `special_tokens`: a mapping str -> id, or just the strings (given ids from `vocab_size` upwards).
    Training may stop early when no pair occurs twice... or at all; the result then has fewer merges.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
        raise ValueError(f"vocab_size must be an integer >= 256 (the byte alphabet), got {vocab_size!r}")
    if isinstance(texts, str):
        texts = [texts]
    total_merges = vocab_size - 256

    chunk_counts: Counter[str] = Counter()
    if pattern:
        import regex  # training only: `import tokend` does not pay for it

        findall = regex.compile(pattern).findall
        for text in texts:
            chunk_counts.update(findall(text))
    else:
        chunk_counts.update(text for text in texts if text)
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # chunk index -> current ids
    freqs = list(chunk_counts.values())
    del chunk_counts

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)  # pair -> weighted count
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunk indices that may contain it
    for index, ids in enumerate(words):
        freq = freqs[index]
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)
    heap = [(-count, -pair[0], -pair[1]) for pair, count in pair_counts.items()]
    heapify(heap)

    vocab: list[bytes] = [bytes([i]) for i in range(256)]  # id -> bytes
    known = set(vocab)
    merges: dict[tuple[int, int], int] = {}
    while len(merges) < total_merges and heap:
        negative_count, negative_left, negative_right = heappop(heap)
        pair = (-negative_left, -negative_right)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale heap entry
        merged_bytes = vocab[pair[0]] + vocab[pair[1]]
        if merged_bytes in known:
            del pair_counts[pair]
            continue
        new_id = len(vocab)
        vocab.append(merged_bytes)
        known.add(merged_bytes)
        merges[pair] = new_id
        _apply_merge(pair, new_id, words, freqs, pair_counts, where, heap)
        if progress is not None:
            progress(len(merges), total_merges)

    ranks = merges_to_ranks(merges)
    specials = _special_token_ids(special_tokens, vocab_size)
    encoding = Encoding(
        name, pat_str=pattern or NO_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )
    return TrainingResult(encoding=encoding, merges=merges)


def _apply_merge(pair, new_id, words, freqs, pair_counts, where, heap) -> None:
    left, right = pair
    changed: set[tuple[int, int]] = set()
    for index in where.pop(pair, ()):
        ids = words[index]
        merged = []
        append = merged.append
        i = 0
        n = len(ids)
        while i < n:
            if i + 1 < n and ids[i] == left and ids[i + 1] == right:
                append(new_id)
                i += 2
            else:
                append(ids[i])
                i += 1
        if len(merged) == n:
            continue  # the index was stale: an earlier merge already consumed this pair here
        freq = freqs[index]
        for old_pair in zip(ids, ids[1:]):
            pair_counts[old_pair] -= freq
            changed.add(old_pair)
        for new_pair in zip(merged, merged[1:]):
            pair_counts[new_pair] += freq
            changed.add(new_pair)
            where[new_pair].add(index)
        words[index] = merged
    for changed_pair in changed:
        count = pair_counts[changed_pair]
        if count > 0:
            heappush(heap, (-count, -changed_pair[0], -changed_pair[1]))
        else:
            del pair_counts[changed_pair]
            where.pop(changed_pair, None)


def _special_token_ids(special_tokens, vocab_size: int) -> dict[str, int]:
    if special_tokens is None:
        return {}
    if isinstance(special_tokens, Mapping):
        specials = dict(special_tokens)
    else:
        specials = {token: vocab_size + offset for offset, token in enumerate(special_tokens)}
    low = {token: token_id for token, token_id in specials.items() if token_id < vocab_size}
    if low:
        token, token_id = next(iter(low.items()))
        raise ValueError(
            f"special token {token!r} has id {token_id}, inside the trained vocabulary (< {vocab_size}); "
            f"give special tokens ids >= {vocab_size} or pass only their strings"
        )
    return specials
