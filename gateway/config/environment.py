"""What the environment does to the parsed file, before validation.

``${NAME}`` in any string value is replaced by the environment variable NAME (``$${`` is a
literal ``${``), and ``IDGATE_<SECTION>__<KEY>`` variables override keys of the tables store,
http, ldap, sync and notifications. Problems are collected as (location, message) pairs.
"""

import re
import tomllib
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel

from gateway.config.fields import unwrap
from gateway.config.sections import (
    HttpConfig,
    LdapConfig,
    NotificationsConfig,
    StoreConfig,
    SyncConfig,
)

#: The tables `IDGATE_<SECTION>__<KEY>` may override.
OVERRIDE_SECTIONS = ("http", "ldap", "notifications", "store", "sync")
ENV_PREFIX = "IDGATE_"
#: Each overridable table's model: an override's text is read as its field's type.
_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "store": StoreConfig,
    "http": HttpConfig,
    "ldap": LdapConfig,
    "sync": SyncConfig,
    "notifications": NotificationsConfig,
}


# ${NAME} with NAME a variable name; $${ is a literal ${; an unterminated ${ is an error.
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)\}|\$\{")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(
    node: Any,
    env: Mapping[str, str],
    loc: tuple[str | int, ...],
    issues: list[tuple[tuple[str | int, ...], str]],
) -> Any:
    """A copy of ``node`` with ``${NAME}`` replaced in every string value."""
    if isinstance(node, Mapping):
        return {key: substitute(value, env, (*loc, key), issues) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [substitute(value, env, (*loc, i), issues) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name = match["name"]
        if name is None:
            issues.append((loc, "unterminated ${ (write $${ for a literal ${)"))
        elif not _VARIABLE.fullmatch(name):
            issues.append((loc, "invalid ${...}: a variable name is letters, digits and _"))
        elif name not in env:
            issues.append((loc, f"environment variable {name} is not set"))
        else:
            return env[name]
        return ""

    return _REFERENCE.sub(replace, node)


def apply_overrides(
    raw: dict[str, Any],
    env: Mapping[str, str],
    issues: list[tuple[tuple[str | int, ...], str]],
) -> dict[tuple[str, str], str]:
    """Apply IDGATE_<SECTION>__<KEY> variables to ``raw``; returns (section, key) -> variable.

    Variables without ``__`` (IDGATE_CONFIG, ...) are not overrides and are ignored.
    """
    origins: dict[tuple[str, str], str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key or "__" in key:
            issues.append(((var,), "overrides are named IDGATE_<SECTION>__<KEY>"))
            continue
        if section not in OVERRIDE_SECTIONS:
            issues.append(
                (
                    (var,),
                    f"unknown section {section!r}: overrides apply to "
                    f"{', '.join(OVERRIDE_SECTIONS)} (use ${{NAME}} in the file for the rest)",
                )
            )
            continue
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # the file's [section] is not a table: validation reports it
        table[key] = _override_value(_SECTION_MODELS[section], key, env[var])
        origins[(section, key)] = var
    return origins


def _override_value(model: type[BaseModel], key: str, text: str) -> Any:
    """An override's value: TOML for numbers, booleans and lists, else the text as it is."""
    field = model.model_fields.get(key)
    if field is None:
        return text
    target = unwrap(field.annotation, None)
    if not (target in (bool, int, float) or get_origin(target) in (tuple, list)):
        # String keys take the text literally, so a password "1234" stays a string.
        return text
    if "\n" in text or "\r" in text:
        return text
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, bool | int | float | list) else text
