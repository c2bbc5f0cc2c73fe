"""Which metric names a PromQL expression (or a Grafana query) reads, and which names tokend promises.

A small lexer, not a PromQL parser: it drops string literals, label matchers, ranges, grouping clauses
and Grafana variables, then keeps the identifiers that are neither keywords nor called as functions.
Enough for the expressions in deploy/ (tests in test_promql_names.py pin its behaviour).

Not handled: metric names given as `{__name__="..."}` (none of ours do that), and `@` modifiers.

    >>> sorted(metric_names('sum by (model) (rate(tokend_tokens_total{job="tokend"}[5m]))'))
    ['tokend_tokens_total']
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["metric_names", "contract_sample_names"]

_KEYWORDS = {
    # aggregation operators (may be followed by `by (...)` rather than a parenthesis)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
    # binary set operators, modifiers, literals
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
    "inf", "nan", "Inf", "NaN",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression or a Grafana ``label_values(metric, label)`` query."""
    grafana = _LABEL_VALUES.match(expr)
    if grafana:
        return {grafana.group(1)}
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if word in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def contract_sample_names(developers_md: Path) -> set[str]:
    """The sample names (as scraped) of every metric DEVELOPERS.md lists under "### Metrics".

    A histogram `x` is scraped as `x_bucket`, `x_sum` and `x_count`; counters are listed with `_total`.
    """
    text = developers_md.read_text()
    start = text.index("### Metrics")
    end = text.find("\n## ", start)
    section = text[start : end if end != -1 else len(text)]
    names: set[str] = set()
    for line in section.splitlines():
        for match in re.finditer(r"`([a-z_:][a-z0-9_:]*)(\{[^}]*\})?`([^`,]*)", line):
            name, _, after = match.groups()
            if "histogram" in after:
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names
