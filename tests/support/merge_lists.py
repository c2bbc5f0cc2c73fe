"""A merge list for a made-up vocabulary, as the random-list tests of the group merge and the atoms build it.

    >>> import random
    >>> ids = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}
    >>> merge_list(ids, random.Random(0), every_split=True)
    [97, 98, 256, 256, 99, 257]

Every split of every token whose two parts are tokens, in (merged id, left id) order (Llama 3's kind), or one such
split of each token picked at random, in merged-id order (a trained list, Qwen 3's kind: tiktoken's rule, joining
any two parts that make a token, gives other ids there). Flat: left, right, merged for each merge.
"""

from __future__ import annotations

import random


def merge_list(ids: dict[bytes, int], rng: random.Random, every_split: bool) -> list[int]:
    merges = sorted(((ids[token[:at]], ids[token[at:]], token_id) for token, token_id in ids.items()
                     for at in range(1, len(token)) if token[:at] in ids and token[at:] in ids),
                    key=lambda merge: (merge[2], merge[0]))
    if not every_split:
        one: dict[int, tuple[int, int, int]] = {}
        for merge in sorted(merges, key=lambda merge: (merge[2], rng.random())):
            one.setdefault(merge[2], merge)
        merges = sorted(one.values(), key=lambda merge: merge[2])
    return [value for merge in merges for value in merge]
