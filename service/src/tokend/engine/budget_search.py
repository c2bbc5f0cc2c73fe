"""The search behind truncation and chunking: the last cut point whose text still fits the budget.

>>> fits = lambda index: index <= 6          # e.g. "the prefix up to cut `index` has <= N tokens"
>>> last_fitting(fits, good=0, bad=10, guess=4)
6

Why a search and not arithmetic: the token count of a text's *own* encoding is not a monotone function of
where it is cut (BPE is not prefix-stable: a cut inside a piece re-merges its bytes, the split pattern sees
a different end of text), so "the N-th token of the whole text's encoding" is only a guess. The search keeps
an invariant instead — `fits(good)` and not `fits(bad)` — and narrows it until good + 1 == bad, so the answer
is exact by construction: the cut at `good` fits and the very next cut does not ("maximal"). It does not
claim the globally longest fitting cut, which would need every cut's count (quadratic).

Cost: `fits` calls, each an encode of the candidate text. From a good guess (the grid of the whole text's
encoding is right nearly always) it is 2 calls; galloping away from the guess and then bisecting keeps it
at O(log distance) when the guess is off.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["last_fitting"]


def last_fitting(fits: Callable[[int], bool], *, good: int, bad: int, guess: int) -> int:
    """The index i with good <= i < bad, fits(i) and not fits(i + 1).

    The caller guarantees fits(good) and not fits(bad); neither is called for them. Calls start at `guess`.
    """
    if not good < bad:
        raise ValueError(f"need good < bad, got good={good}, bad={bad}")
    probe = min(max(guess, good), bad - 1)
    if probe > good:
        if fits(probe):
            good = probe
        else:
            bad = probe
    step = 1
    if bad - good > 1:
        if probe == good:  # the guess fits: gallop forward
            while good + step < bad:
                if fits(good + step):
                    good += step
                    step *= 2
                else:
                    bad = good + step
                    break
        else:  # the guess does not fit: gallop backward
            while bad - step > good:
                if fits(bad - step):
                    good = bad - step
                    break
                bad -= step
                step *= 2
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good
