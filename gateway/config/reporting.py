"""Pydantic's validation errors, turned into `ConfigIssue`s an operator can act on.

Each issue is keyed by the dotted path in the file; messages repeat numbers only, never a
configured string, and unknown keys get a "did you mean" hint.
"""

import difflib
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from gateway.config.errors import ConfigIssue
from gateway.config.fields import unwrap
from gateway.config.keys import dotted_key
from gateway.config.model import Config
from gateway.config.sources import SOURCE_KINDS

_TYPE_MESSAGES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "path_type": "must be a path",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "greater_than": ("gt", "must be greater than {}"),
    "less_than": ("lt", "must be less than {}"),
}


def validation_issues(
    exc: ValidationError, raw: Mapping[str, Any], origins: Mapping[tuple[str, str], str]
) -> list[ConfigIssue]:
    """One issue per error in ``exc``, keyed in ``raw``; ``origins`` names override variables."""
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        context = error.get("ctx") or {}
        if kind == "idgate_issues":
            issues += [ConfigIssue(key, message) for key, message in context["issues"]]
            continue
        if kind == "too_short" and len(error.get("input") or ()) >= context.get("min_length", 0):
            continue  # pydantic counts only the valid items: the invalid ones are reported
        loc = _strip_tag(tuple(error["loc"]), raw)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        elif kind == "idgate_sibling":
            loc = (*loc[:-1], context["field"])
        message = _message(error, loc, raw)
        origin = origins.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
        if origin:
            message += f" (from {origin})"
        issues.append(ConfigIssue(dotted_key(loc, raw), message))
    return issues


def _strip_tag(loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> tuple[str | int, ...]:
    """Drop the discriminator tag pydantic puts in a source's error location."""
    if len(loc) > 2 and loc[0] == "sources" and isinstance(loc[1], int) and loc[2] in SOURCE_KINDS:
        return (*loc[:2], *loc[3:])
    return loc


def _message(error: ErrorDetails, loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> str:
    kind: str = error["type"]
    context: Mapping[str, Any] = error.get("ctx") or {}
    kinds = ", ".join(SOURCE_KINDS)
    if kind == "union_tag_invalid":
        return f"unknown kind; valid kinds: {kinds}"
    if kind == "union_tag_not_found":
        return f"is required: one of {kinds}"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1], raw)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"
    if kind == "idgate_sibling":
        return str(context["message"])
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind in _BOUNDS:
        bound, text = _BOUNDS[kind]
        limit = context.get(bound)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # "at most 60", not "at most 60.0"
        message = text.format(limit)
        number = error.get("input")
        # Numbers only: a bound never applies to a secret, and a string is never repeated.
        if isinstance(number, int | float) and not isinstance(number, bool):
            message += f" (got {number})"
        return message
    if kind in ("too_short", "string_too_short"):
        minimum = context.get("min_length")
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} items"
    if kind in ("literal_error", "enum"):
        return f"must be {context.get('expected')}"
    return _TYPE_MESSAGES.get(kind, str(error["msg"]))


def _known_keys(loc: tuple[str | int, ...], raw: Mapping[str, Any]) -> list[str]:
    """The keys the table at ``loc`` accepts, for "did you mean" hints."""
    annotation: Any = Config
    node: Any = raw
    for part in loc:
        annotation = unwrap(annotation, node)
        if isinstance(part, int):
            args = get_args(annotation)
            annotation = args[0] if args else None
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            fields = getattr(annotation, "model_fields", None)
            if not fields or part not in fields:
                return []
            annotation = fields[part].annotation
            node = node.get(part) if isinstance(node, Mapping) else None
    return list(getattr(unwrap(annotation, node), "model_fields", {}))
