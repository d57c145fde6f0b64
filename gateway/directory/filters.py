"""Search filters (RFC 4515), built by small pure functions that always escape values.

Only attribute names from the configuration and the administrator's `user_filter` enter a
filter unescaped; every value, wherever it comes from, goes through `escape_value` or
`escape_octets` (STYLE habit 9).
"""

from ldap3.utils.conv import escape_bytes, escape_filter_chars

__all__ = ["equality", "escape_octets", "escape_value", "scope_filter"]


def escape_value(value: str) -> str:
    """Escape a text assertion value (RFC 4515 §3).

    ``*``, ``(``, ``)``, ``\\`` and NUL are escaped as ldap3 does; spaces too, because ldap3's
    filter parser strips unescaped spaces around a value and the server, not the client,
    decides what insignificant spaces are.

    Raises:
        ValueError: the value cannot be encoded as UTF-8 (a lone surrogate).
    """
    value.encode("utf-8")  # raises UnicodeEncodeError, a ValueError
    return str(escape_filter_chars(value, "utf-8")).replace(" ", "\\20")


def escape_octets(raw: bytes) -> str:
    """Escape every octet of a binary value as ``\\xx`` (e.g. an AD objectGUID)."""
    return str(escape_bytes(raw)) if raw else ""


def equality(attribute: str, escaped: str) -> str:
    """``(attribute=value)`` for an attribute name from the configuration and an escaped value."""
    return f"({attribute}={escaped})"


def scope_filter(object_class: str, user_filter: str | None, *conditions: str) -> str:
    """The scope of a source (object class and user filter), and-ed with `conditions`."""
    parts = [equality("objectClass", escape_value(object_class))]
    if user_filter:
        parts.append(user_filter)
    parts.extend(conditions)
    return f"(&{''.join(parts)})"
