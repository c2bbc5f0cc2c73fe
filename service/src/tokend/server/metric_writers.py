"""Writers for labelled metric children that a worker writes on every call: the same values as the child's own
``inc`` / ``dec`` / ``observe``, without prometheus_client's checks of each write.

Why: a CountTokens call writes eleven metric values. Each of ``Counter.inc``, ``Gauge.inc`` / ``dec`` and
``Histogram.observe`` first asks whether the metric is a labelled child (``_raise_if_not_observable``, two Python
calls) before it adds to the child's value: three Python calls of a write's six or seven, ~30 of the ~370 Python
calls of a whole CountTokens in a worker (cProfile of a hot loop over the interceptor chain, the servicer and the
service). A child made by ``labels()`` always is one, so the writers made here add to the value at once
(``value.inc``: prometheus_client's lock, its multiprocess file) and find a histogram's bucket by bisection.

They use three attributes prometheus_client keeps on a child (``_value``; a histogram's ``_sum``, ``_buckets``
and ``_upper_bounds``); a child without them (another version, or a test's double) gets its own methods, so a
write is never lost. tests/server/test_metric_writers.py holds the writers to the public methods' samples.

    started = adder(metrics.started.labels("unary", "tokend.v1.Tokenizer", "CountTokens"))
    started(1)                                            # == child.inc(1)
    seconds = observer(metrics.handling_seconds.labels("unary", "tokend.v1.Tokenizer", "CountTokens"))
    seconds(0.0007)                                       # == child.observe(0.0007)

Not handled: exemplars (the worker sets none); a gauge in ``mostrecent`` mode (its ``inc`` refuses; none of ours).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["adder", "subtracter", "observer"]


def adder(child: Any) -> Callable[[float], None]:
    """``child.inc`` (a Counter's or Gauge's labelled child) as one call to its value. Amounts must not be negative
    for a Counter (the worker adds counts and sizes)."""
    value = getattr(child, "_value", None)
    return value.inc if _is_value(value) else child.inc


def subtracter(child: Any) -> Callable[[], None]:
    """``child.dec`` of a Gauge's labelled child: subtracts 1."""
    value = getattr(child, "_value", None)
    return functools.partial(value.inc, -1) if _is_value(value) else child.dec


def observer(child: Any) -> Callable[[float], None]:
    """``child.observe`` of a Histogram's labelled child: its sum, and the bucket of the first upper bound not
    below the amount (bounds end with +Inf; ``bisect_left`` is that bucket)."""
    total, buckets, bounds = (getattr(child, name, None) for name in ("_sum", "_buckets", "_upper_bounds"))
    if not (_is_value(total) and isinstance(buckets, list) and isinstance(bounds, list) and len(buckets) == len(bounds)
            and all(map(_is_value, buckets)) and bounds and bounds[-1] == float("inf")):  # fmt: skip
        return child.observe
    add_to_sum = total.inc
    bucket_adders = [bucket.inc for bucket in buckets]
    bounds = list(bounds)
    find = bisect.bisect_left

    def observe(amount: float) -> None:
        add_to_sum(amount)
        bucket_adders[find(bounds, amount)](1)

    return observe


def _is_value(value: Any) -> bool:
    return callable(getattr(value, "inc", None))
