"""A client's search filter (RFC 4511 §4.5.1.7, as ldaptor decodes it) as a neutral filter.

Translated once per source, because attribute names differ per source (`schema.py`). What the
gateway cannot evaluate is Undefined, as RFC 4511 §4.5.1.7 asks: an unknown attribute, an
extensible match, an assertion value that is not UTF-8. Undefined is not FALSE: `(!(x=1))` of
an unknown `x` matches nothing.

A filter nested too deeply for the decoder arrives as a `wire.DeepFilter` (its BER bytes); it is
refused like any filter over MAX_DEPTH, whatever its depth.
"""

from collections.abc import Mapping, Sequence, Set
from typing import Any

from ldaptor.protocols import pureldap

from ldapproxy.schema import SourceSchema
from ldapproxy.wire import DeepFilter
from query import filter as q

UNDEFINED = q.Const(None)
#: The deepest nesting translated; deeper filters are refused before any recursion limit.
#: SQLite's parser overflows its stack ("parser stack overflow") at about 30 levels of
#: alternating AND and OR in the compiled query (NOT adds none: store.search pushes it down).
MAX_DEPTH = 20
#: The most and/or/not items and comparisons one filter may hold: SQLite refuses expression
#: trees deeper than 1000, and compiling a query of thousands of terms took seconds of CPU
#: (as in scim.filters). RADIUS servers and SSO agents send a handful.
MAX_TERMS = 200


class FilterTooDeep(Exception):
    """Nested deeper than MAX_DEPTH, or more than MAX_TERMS items in all."""


def check_size(item: Any) -> None:
    """Raises FilterTooDeep when `item` holds more than MAX_TERMS items, or was too deep to
    decode (no recursion)."""
    if isinstance(item, DeepFilter):
        raise FilterTooDeep
    seen = 0
    stack = [item]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_TERMS:
            raise FilterTooDeep
        if isinstance(node, pureldap.LDAPFilter_and | pureldap.LDAPFilter_or):
            stack.extend(node)
        elif isinstance(node, pureldap.LDAPFilter_not):
            stack.append(node.value)


def _filter_string(value: Any) -> str | None:
    """The text of an LDAPString in a filter; None for anything else or not UTF-8 (an INTEGER
    there must not become `bytes(n)`, n zero bytes)."""
    raw = value.value if hasattr(value, "value") else value
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_bounds(item: Any, depth: int) -> None:
    """The whole filter's size once, at its top; the depth at every level."""
    if depth == 0:
        check_size(item)
    if depth > MAX_DEPTH:
        raise FilterTooDeep


def translate(item: Any, schema: SourceSchema, depth: int = 0) -> q.Node:
    """The store filter equivalent to `item` for users of `schema`'s source.

    Raises:
        FilterTooDeep: more than MAX_DEPTH levels of and/or/not, or MAX_TERMS items.
    """
    _check_bounds(item, depth)
    if isinstance(item, pureldap.LDAPFilter_and):
        return q.And(tuple(translate(i, schema, depth + 1) for i in item))
    if isinstance(item, pureldap.LDAPFilter_or):
        return q.Or(tuple(translate(i, schema, depth + 1) for i in item))
    if isinstance(item, pureldap.LDAPFilter_not):
        return q.Not(translate(item.value, schema, depth + 1))
    if isinstance(item, pureldap.LDAPFilter_present):
        return _present(_filter_string(item) or "", schema)
    if isinstance(item, pureldap.LDAPFilter_substrings):
        return _substrings(item, schema)
    if isinstance(item, pureldap.LDAPAttributeValueAssertion):
        return _assertion(item, schema)
    return UNDEFINED  # extensibleMatch and anything else


def _present(name: str, schema: SourceSchema) -> q.Node:
    if name.casefold() in ("objectclass", "entrydn"):
        return q.Const(True)
    attr = schema.attr(name)
    return UNDEFINED if attr is None else q.Present(attr)


def _assertion(item: Any, schema: SourceSchema) -> q.Node:
    name = _filter_string(item.attributeDesc) or ""
    value = _filter_string(item.assertionValue)
    if value is None:
        return UNDEFINED
    if name.casefold() == "objectclass":
        classes = {c.casefold() for c in schema.object_classes}
        if isinstance(item, pureldap.LDAPFilter_equalityMatch | pureldap.LDAPFilter_approxMatch):
            return q.Const(value.casefold() in classes)
        return UNDEFINED
    attr = schema.attr(name)
    if attr is None:
        return UNDEFINED
    if isinstance(item, pureldap.LDAPFilter_greaterOrEqual):
        return q.GreaterOrEqual(attr, value)
    if isinstance(item, pureldap.LDAPFilter_lessOrEqual):
        return q.LessOrEqual(attr, value)
    # equalityMatch, and approxMatch as equality (RFC 4511 §4.5.1.7.6 leaves the rule open).
    return q.Equals(attr, value)


def _substrings(item: Any, schema: SourceSchema) -> q.Node:
    attr = schema.attr(_filter_string(item.type) or "")
    if attr is None:
        return UNDEFINED
    initial: str | None = None
    final: str | None = None
    middle: list[str] = []
    for part in item.substrings:
        text = _filter_string(part)
        if text is None:
            return UNDEFINED
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            initial = text
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            final = text
        else:
            middle.append(text)
    return q.Substrings(attr, initial, tuple(middle), final)


def login_values(item: Any, schema: SourceSchema) -> list[str]:
    """The names an equality on the login attribute asks for, at the top or in an AND.

    These are the filters of RADIUS servers and SSO agents, `(uid=bob)` or
    `(&(objectClass=person)(uid=bob))`: when the store has nobody by that name, the
    gateway asks the directory for exactly that name (SPEC §6).
    """
    if isinstance(item, pureldap.LDAPFilter_and):
        return [v for i in item for v in login_values(i, schema)]
    if isinstance(item, pureldap.LDAPFilter_equalityMatch):
        name = (_filter_string(item.attributeDesc) or "").casefold()
        value = _filter_string(item.assertionValue)
        if value and name in (schema.login.casefold(), "uid"):
            return [value]
    return []


def matches(
    item: Any, attributes: Mapping[str, Sequence[str]], known: Set[str], depth: int = 0
) -> bool | None:
    """Evaluate `item` on a small in-memory entry (a naming context or source container).

    Three-valued as RFC 4511 §4.5.1.7 says: True, False, or None for Undefined. An attribute
    the entry lacks is FALSE when the server knows it (`known`, folded names), else Undefined,
    as it is for users.

    Raises:
        FilterTooDeep: more than MAX_DEPTH levels of and/or/not, or MAX_TERMS items.
    """
    _check_bounds(item, depth)
    if isinstance(item, pureldap.LDAPFilter_and | pureldap.LDAPFilter_or):
        results = [matches(i, attributes, known, depth + 1) for i in item]
        decisive = isinstance(item, pureldap.LDAPFilter_or)
        if decisive in results:
            return decisive
        return None if None in results else not decisive
    if isinstance(item, pureldap.LDAPFilter_not):
        inner = matches(item.value, attributes, known, depth + 1)
        return None if inner is None else not inner
    folded = {name.casefold(): [v.casefold() for v in vs] for name, vs in attributes.items()}
    name = (
        _filter_string(item.type if isinstance(item, pureldap.LDAPFilter_substrings) else item)
        or ""
    )
    if isinstance(item, pureldap.LDAPAttributeValueAssertion):
        name = _filter_string(item.attributeDesc) or ""
    if name.casefold() not in folded and name.casefold() not in known:
        return None
    if isinstance(item, pureldap.LDAPFilter_present):
        return (_filter_string(item) or "").casefold() in folded
    if isinstance(item, pureldap.LDAPFilter_substrings):
        values = folded.get((_filter_string(item.type) or "").casefold(), [])
        pieces = [(_filter_string(p) or "").casefold() for p in item.substrings]
        return any(_substring_match(v, item.substrings, pieces) for v in values)
    if isinstance(item, pureldap.LDAPFilter_equalityMatch | pureldap.LDAPFilter_approxMatch):
        value = _filter_string(item.assertionValue)
        values = folded.get((_filter_string(item.attributeDesc) or "").casefold(), [])
        return value is not None and value.casefold() in values
    return None


def _substring_match(value: str, parts: Sequence[Any], pieces: Sequence[str]) -> bool:
    position = 0
    for part, piece in zip(parts, pieces, strict=True):
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            if not value.startswith(piece):
                return False
            position = len(piece)
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            return value.endswith(piece) and len(value) - len(piece) >= position
        else:
            found = value.find(piece, position)
            if found < 0:
                return False
            position = found + len(piece)
    return True
