"""The metric names a PromQL expression reads, found without a PromQL library.

Sound for expressions promtool has already parsed: strings, label matchers, ranges and label
lists are cut out first, so every bare identifier left is a function, a keyword or a metric.
"""

from __future__ import annotations

import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool", "inf", "nan"}
STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'


def metric_names(expr: str) -> set[str]:
    """Every metric name expr selects, by bare name or by an exact __name__ matcher."""
    names = {re.sub(r"^[\"'`]|[\"'`]$", "", m) for m in re.findall(rf"__name__\s*=~?\s*({STRING})", expr)}
    text = re.sub(STRING, '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1).lower() not in KEYWORDS:
            names.add(match.group(1))
    return names
