"""Metric names a PromQL expression reads (enough of PromQL for our rules and dashboard)."""

from __future__ import annotations

import re

_FUNCTIONS_AND_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "sum", "min", "max", "avg", "count", "rate", "increase", "irate", "time", "absent", "histogram_quantile",
    "humanize", "humanizeDuration", "humanizePercentage", "topk", "bottomk", "quantile", "stddev",
}  # fmt: skip


def metric_names(expression: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if name in _FUNCTIONS_AND_KEYWORDS or following.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]|e\d*", name):
            continue
        names.add(name)
    return names
