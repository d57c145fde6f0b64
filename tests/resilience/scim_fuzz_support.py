"""SCIM fuzz strategies for bytes that are not text and for control characters (issue 22), beside
the filter grammar of `fuzz_support`:

- `header_sets`: a few request headers (User-Agent, Host, Content-Type, If-Match, Authorization,
  ...) with values an HTTP/1.1 connection carries (RFC 9110 §5.5: visible ASCII and obs-text,
  SP and HTAB inside), UTF-8 or not. Controls cannot cross the wire (h11 refuses them on both
  ends): tests/scim/test_bad_input.py hands them to the app in-process.
- `control_texts`: strings of NUL, the other controls (U+0001-U+001F, U+007F) and letters.
- `known_user_bodies`: a user whose answer is known: 400 invalidValue when one of its strings
  holds NUL, else 201 and every value back as sent.
- `raw_control_filters`: a modelled filter with a raw U+0000-U+001F put anywhere in its text:
  400 invalidFilter (RFC 7644 §3.4.2.2 parts are separated by SP, values are JSON strings).
- `control_ids`: a path segment holding a percent-encoded control or non-UTF-8 octet.

Nothing here imports pytest.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from tests.resilience.fuzz_support import scim_model_filters

__all__ = [
    "CONTROLS",
    "HEADER_NAMES",
    "NEUTRAL_HEADERS",
    "control_ids",
    "control_texts",
    "has_nul",
    "header_sets",
    "is_text",
    "known_user_bodies",
    "raw_control_filters",
]

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTROLS = [chr(code) for code in range(0x20)] + ["\x7f"]

# -- headers ------------------------------------------------------------------------------------

HEADER_NAMES = [
    "User-Agent", "Host", "Content-Type", "If-Match", "If-None-Match", "Accept",
    "Accept-Language", "Authorization", "X-Request-Id",
]  # fmt: skip
#: Headers whose value, when it is text, changes nothing a filter finds.
NEUTRAL_HEADERS = {"user-agent", "host", "accept-language", "x-request-id"}
#: RFC 9110 §5.5 field-vchar: what h11 sends and takes in a field value (and SP/HTAB inside).
_FIELD_OCTETS = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])
_octets = st.binary(min_size=1, max_size=12).map(
    lambda raw: bytes(_FIELD_OCTETS[octet % len(_FIELD_OCTETS)] for octet in raw)
)
header_values: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(
        [
            b"caf\xe9",  # Latin-1
            b"\xff\xfe",  # a UTF-16 byte-order mark
            b"\xc3",  # UTF-8 cut short
            b"\xed\xa0\x80",  # an encoded surrogate
            b"\xc0\xaf",  # an overlong "/"
            "café".encode(),
            b"Bearer \xff\xfe",
            b"Bearer caf\xe9",
            b"application/scim+json; charset=\xe9",
            b'W/"\xe9"',
            b"*",
        ]
    ),
    st.lists(_octets, min_size=1, max_size=3).map(b" ".join),
    st.lists(_octets, min_size=2, max_size=3).map(b"\t".join),
)
#: {header name: value}: one to three headers of a request, sent over its client's.
header_sets: st.SearchStrategy[dict[str, bytes]] = st.dictionaries(
    st.sampled_from(HEADER_NAMES), header_values, min_size=1, max_size=3
)


def is_text(value: bytes) -> bool:
    """Whether the gateway reads a header value as text (scim.endpoints: UTF-8, no control)."""
    try:
        decoded = value.decode()
    except UnicodeDecodeError:
        return False
    return not any(character in CONTROLS and character != "\t" for character in decoded)


# -- strings, bodies and filters ----------------------------------------------------------------

control_texts: st.SearchStrategy[str] = st.lists(
    st.one_of(st.sampled_from(CONTROLS), st.sampled_from(["a", "é", " ", "Z", "\u202e", "1"])),
    min_size=1,
    max_size=6,
).map("".join)


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds NUL in one of its strings."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(item) for item in value.values())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False


#: Numbers the known users: each has a userName of its own (409 is no answer they expect).
_serial = itertools.count()


def _known_user(texts: list[str]) -> dict[str, Any]:
    name, display, title, given, department = texts
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": f"fz{next(_serial)}-{name}",
        "displayName": display,
        "title": title,
        "name": {"givenName": given},
        ENTERPRISE: {"department": department},
    }


known_user_bodies: st.SearchStrategy[dict[str, Any]] = st.builds(
    _known_user, st.lists(control_texts, min_size=5, max_size=5)
)


def _insert(text: str, position: int, character: str) -> str:
    position %= len(text) + 1
    return text[:position] + character + text[position:]


#: A modelled filter's text with a raw U+0000-U+001F somewhere: refused (invalidFilter).
raw_control_filters: st.SearchStrategy[str] = st.builds(
    _insert,
    scim_model_filters.map(lambda pair: pair[0]),
    st.integers(0, 200),
    st.sampled_from(CONTROLS[:0x20]),
)

#: Path segments with a percent-encoded control, or octets that are not UTF-8 (which the
#: server decodes to U+FFFD).
control_ids: st.SearchStrategy[str] = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from(["", "a", "00000000-0000-0000-0000-00000000000"]),
    st.one_of(
        st.sampled_from(CONTROLS).map(lambda character: f"%{ord(character):02X}"),
        st.sampled_from(["%E9", "%FF%FE", "%C3", "%ED%A0%80", "%C0%AF"]),
    ),
    st.sampled_from(["", "0", "x"]),
)
