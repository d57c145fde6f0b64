"""Checks of single values, used as pydantic validators.

Each returns the value (or its normal form) or raises ``ValueError``; no message ever repeats
the value, so a misplaced secret cannot leak through an error. Only `existing_file` and
`base_dir` look beyond the value: at the file system and the validation context.
"""

import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from gateway.auth.secrets import is_argon2_hash

SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
NETBIOS = re.compile(r"[^\\/:*?\"<>|.\s][^\\/:*?\"<>|\s]{0,14}")
UPN = re.compile(r"[^@\s]+@[A-Za-z0-9.-]+")
DOWNLEVEL = re.compile(r"[^\\\s]+\\[^\\\s]+")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def source_id(value: str) -> str:
    if not SOURCE_ID.fullmatch(value):
        raise ValueError(
            "must be 1-63 characters: lowercase letters, digits, '_' and '-', starting with a"
            " letter or digit (it appears in URLs and DNs)"
        )
    return value


def admin_name(value: str) -> str:
    if not ADMIN_NAME.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters: letters, digits, '_', '.', '@' and '-', starting with a"
            " letter or digit"
        )
    return value


def attribute_name(value: str) -> str:
    if not _ATTRIBUTE.fullmatch(value):
        raise ValueError("must be an LDAP attribute name, e.g. mail or 2.5.4.3 (RFC 4512 §2.5)")
    return value


def hostname(value: str) -> str:
    if _HOSTNAME.fullmatch(value):
        return value
    try:
        ip_address(value)
    except ValueError:
        raise ValueError("must be a host name or an IP address") from None
    return value


def distinguished_name(value: str) -> str:
    try:
        parse_dn(value, escape=False, strip=True)
    except LDAPInvalidDnError:
        # ldap3's message quotes the DN; ours does not.
        raise ValueError(
            "must be a DN: attr=value components separated by commas, e.g."
            " ou=people,dc=example,dc=org (RFC 4514)"
        ) from None
    return value


def ldap_filter(value: str) -> str:
    """Check an RFC 4515 filter loosely: one parenthesised filter, balanced, escapes valid."""
    if not (value.startswith("(") and value.endswith(")")):
        raise ValueError("must be one parenthesised LDAP filter, e.g. (objectClass=person)")
    depth = 0
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            # RFC 4515 §3: a backslash is always followed by two hex digits.
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3]):
                raise ValueError("a backslash must start a \\XX hex escape (RFC 4515 §3)")
            i += 3
            continue
        if char == "(":
            depth += 1
            if value[i + 1 : i + 2] not in ("&", "|", "!", "("):
                leaf_end = value.find(")", i)
                if leaf_end < 0 or "=" not in value[i:leaf_end]:
                    raise ValueError("every (attribute=value) item needs an operator (RFC 4515)")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
            if depth == 0 and i != len(value) - 1:
                raise ValueError("must be one filter: combine several with (&...) or (|...)")
        i += 1
    if depth != 0:
        raise ValueError("unbalanced parentheses")
    return value


def _split_url(value: str) -> SplitResult:
    """urlsplit, with its errors (which quote the URL) replaced by ours."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError("is not a valid URL (bad host or port)") from None
    return parts


def ldap_url(value: str) -> str:
    parts = _split_url(value)
    if parts.scheme.lower() not in ("ldap", "ldaps"):
        raise ValueError("must start with ldap:// or ldaps://")
    if not parts.hostname:
        raise ValueError("must name a host: ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must name a server only (no DN, attributes, filter or credentials)")
    return value


def http_url(value: str) -> str:
    parts = _split_url(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def base_url(value: str) -> str:
    http_url(value)
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError("must be scheme://host[:port][/path] only")
    # SCIM meta.location is built by appending paths: no trailing slash (RFC 7644 §3.1).
    return value.rstrip("/")


def network(value: Any) -> IPv4Network | IPv6Network:
    """An IP network in CIDR form; a bare address is a network of that one address."""
    if not isinstance(value, str):
        raise ValueError('must be a string such as "10.0.0.0/8" or "2001:db8::/32"')
    try:
        return ip_network(value.strip(), strict=True)
    except ValueError:
        raise ValueError(
            'must be an IP network such as "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32"'
            " (address/prefix, with the bits after the prefix zero)"
        ) from None


def email_address(value: str) -> str:
    _, address = parseaddr(value)
    if not address or "@" not in address or any(c.isspace() for c in address):
        raise ValueError("must be an e-mail address, e.g. idgate@example.org")
    return value


def argon2_hash(value: str) -> str:
    if not is_argon2_hash(value):
        raise ValueError(
            "must be an argon2 hash, not a cleartext secret: run `idgate hash-secret` and"
            " paste its output ($argon2id$...)"
        )
    return value


def existing_file(value: Path, info: ValidationInfo) -> Path:
    """Resolve a path against the config file's directory and require a readable file."""
    if str(value) in ("", "."):
        raise ValueError("must be a file path")
    # No ~ expansion: it would read HOME behind the caller's back; ${HOME}/... works.
    path = (base_dir(info) / value).resolve()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file not readable by this process: {path}")
    return path


def base_dir(info: ValidationInfo | None) -> Path:
    """What relative paths are relative to: the context's ``base_dir``, else the cwd."""
    context = info.context if info is not None else None
    if isinstance(context, Mapping) and isinstance(context.get("base_dir"), Path):
        return Path(context["base_dir"])
    return Path.cwd()


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def integer(value: Any) -> Any:
    # Lax mode (kept for numbers that come from ${NAME} as text) would read true as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def number(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _threshold(value: Any, convert: type, low: float, high: float | None) -> Any:
    """A guard threshold: a number within bounds, or ``false`` (also an override's text) to
    switch it off. 0 is a number here (hold every disable), never false."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "false"):
        return False
    number: Any = value
    if isinstance(value, str):
        try:
            number = convert(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise PydanticCustomError(
            "threshold_type", "must be a number, or false to switch this threshold off"
        )
    if convert is int and number != int(number):
        raise PydanticCustomError("threshold_type", "must be a whole number, or false")
    if not low <= number <= (high if high is not None else number) or number != number:
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise PydanticCustomError(
            "threshold_bounds", f"must be {bounds} (got {number}), or false to switch it off"
        )
    return convert(number)


def disable_count(value: Any) -> int | bool:
    return _threshold(value, int, 0, None)  # type: ignore[no-any-return]


def disable_percent(value: Any) -> float | bool:
    return _threshold(value, float, 0, 100)  # type: ignore[no-any-return]
