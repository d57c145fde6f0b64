"""The dotted paths an operator reads in the file: ``sources.corp.urls[1]``, ``admins.ops.role``."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.config.checks import ADMIN_NAME, SOURCE_ID


def dotted_key(loc: Sequence[str | int], raw: Mapping[str, Any]) -> str:
    """The dotted path an operator reads: sources.corp.urls[1], admins.ops.role, sources[2]."""
    key = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            label = None
            if position == 1 and loc[0] == "sources":
                label = _labels(raw, "sources", "id", SOURCE_ID).get(part)
            elif position == 1 and loc[0] == "admins":
                label = _labels(raw, "admins", "name", ADMIN_NAME).get(part)
            key += f".{label}" if label else f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(config)"


def _labels(
    raw: Mapping[str, Any], section: str, field: str, pattern: re.Pattern[str]
) -> dict[int, str]:
    """Index -> name for the entries of an array of tables that have a valid, unique name."""
    items = raw.get(section)
    if not isinstance(items, list | tuple):
        return {}
    names = [item.get(field) if isinstance(item, Mapping) else None for item in items]
    return {
        i: name
        for i, name in enumerate(names)
        if isinstance(name, str) and pattern.fullmatch(name) and names.count(name) == 1
    }
