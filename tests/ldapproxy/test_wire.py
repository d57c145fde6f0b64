"""`ldapproxy.wire.decode` on nesting: what ldaptor is handed, what it never sees, and what
is a bad message (RFC 4511 §4.1.1, §4.5.1.7; X.690 §8.1).

Frames are written with tests/ldapproxy/ber.py, independent of ldaptor.
"""

import pytest
from ldaptor.protocols import pureldap

from ldapproxy import filters, wire
from tests.ldapproxy import ber

PEOPLE = "ou=people,dc=example,dc=org"
AND, OR, NOT = 0xA0, 0xA1, 0xA2


def nested(depth: int, leaf: bytes, tag: int) -> bytes:
    for _ in range(depth):
        leaf = ber.tlv(tag, leaf)
    return leaf


def equality(attribute: str, value: bytes) -> bytes:
    return ber.tlv(0xA3, ber.octets(attribute) + ber.octets(value))


def substrings(attribute: str, *parts: tuple[int, bytes]) -> bytes:
    pieces = b"".join(ber.octets(value, tag) for tag, value in parts)
    return ber.tlv(0xA4, ber.octets(attribute) + ber.tlv(ber.SEQUENCE, pieces))


def search(ldap_filter: bytes, base: str = PEOPLE) -> bytes:
    return ber.search_request(base, ldap_filter)


def test_nesting_counts_every_level_without_recursion() -> None:
    assert wire.nesting(ber.octets("x")) == 1
    assert wire.nesting(ber.message(1, ber.tlv(ber.UNBIND_REQUEST, b""))) == 2
    assert wire.nesting(ber.message(1, search(ber.present("uid")))) == 4  # attributes: "1.1"
    deep = ber.message(1, search(nested(100_000, ber.present("uid"), NOT)))
    assert wire.nesting(deep) == 100_003  # far past any recursion limit


def test_every_filter_the_front_evaluates_is_decoded_by_ldaptor() -> None:
    # filters.MAX_DEPTH levels over the deepest leaf (substrings: two levels of its own).
    leaf = substrings("uid", (0x80, b"a"), (0x82, b"z"))
    frame = ber.message(1, search(nested(filters.MAX_DEPTH, leaf, AND)))
    assert wire.nesting(frame) <= wire.MAX_NESTING
    decoded = wire.decode(frame).op.filter
    assert isinstance(decoded, pureldap.LDAPFilter_and)


@pytest.mark.parametrize("tag", [AND, OR, NOT], ids=["and", "or", "not"])
@pytest.mark.parametrize("depth", [62, 245, 1000, 30_000])
def test_a_deeper_filter_is_kept_as_bytes_and_the_rest_decoded(tag: int, depth: int) -> None:
    ldap_filter = nested(depth, equality("uid", b"alice"), tag)
    control = ber.control(wire.MANAGE_DSA_IT.decode(), critical=True)
    request = wire.decode(ber.message(7, search(ldap_filter), [control]))
    assert request.id == 7
    assert request.controls == (wire.Control(wire.MANAGE_DSA_IT, True, None),)
    op = request.op
    assert isinstance(op, pureldap.LDAPSearchRequest)
    assert (op.baseObject, op.scope, op.attributes) == (PEOPLE.encode(), 2, [b"1.1"])
    assert op.filter == wire.DeepFilter(ldap_filter)
    assert op.filter.toWire() == ldap_filter  # what a paged search is keyed by
    assert len(repr(op.filter)) < 40
    with pytest.raises(filters.FilterTooDeep):
        filters.check_size(op.filter)


def test_every_filter_choice_may_sit_at_the_bottom_of_a_deep_filter() -> None:
    leaves = [
        ber.tlv(AND, b""),  # RFC 4526 absolute true
        ber.tlv(OR, b""),
        equality("uid", b"a\x00"),
        substrings("uid", (0x80, b"a"), (0x81, b"\x00"), (0x82, b"z")),
        ber.tlv(0xA5, ber.octets("uid") + ber.octets("m")),
        ber.tlv(0xA6, ber.octets("uid") + ber.octets("m")),
        ber.present("uid"),
        ber.tlv(0xA8, ber.octets("uid") + ber.octets("alice")),
        ber.tlv(0xA9, ber.octets("2.5.13.2", 0x81) + ber.octets("uid", 0x82)
                + ber.octets("a", 0x83) + ber.tlv(0x84, b"\xff")),
        ber.tlv(0xA9, ber.octets("a", 0x83)),
    ]  # fmt: skip
    for leaf in leaves:
        wide = ber.tlv(OR, leaf + nested(100, leaf, NOT) + leaf)
        op = wire.decode(ber.message(1, search(nested(10, wide, AND)))).op
        assert isinstance(op.filter, wire.DeepFilter), leaf.hex()


MALFORMED_DEEP = {
    # RFC 4511 §4.5.1.7: not holds exactly one filter; substrings hold OCTET STRINGs only.
    "not of two filters": ber.tlv(NOT, ber.present("uid") + nested(100, ber.present("cn"), NOT)),
    "deep not inside substrings": ber.tlv(
        0xA4, ber.octets("uid") + ber.tlv(ber.SEQUENCE, nested(100, ber.present("cn"), NOT))
    ),
    "deep not as an assertion value": ber.tlv(
        0xA3, ber.octets("uid") + nested(100, ber.present("cn"), NOT)
    ),
    "unknown filter tag beside a deep branch": ber.tlv(
        AND, ber.tlv(0xAA, b"") + nested(100, ber.present("cn"), NOT)
    ),
    "substrings without parts beside a deep branch": ber.tlv(
        AND,
        ber.tlv(0xA4, ber.octets("uid") + ber.tlv(ber.SEQUENCE, b""))
        + nested(100, ber.present("cn"), NOT),
    ),
    "extensible match without a value, beside a deep branch": ber.tlv(
        OR, ber.tlv(0xA9, ber.octets("uid", 0x82)) + nested(100, ber.present("cn"), NOT)
    ),
    "trailing byte after the filter": nested(100, ber.present("uid"), AND) + b"\x00",
}
#: Malformed only below MAX_NESTING levels: refused as too deep (53) without being read there,
#: so a message-sized chain costs the bound, not its length (wire._is_filter).
UNREAD_BELOW = {
    "unknown filter tag at the bottom": nested(100, ber.tlv(0xAA, b""), AND),
    "substrings without parts at the bottom": nested(
        100, ber.tlv(0xA4, ber.octets("uid") + ber.tlv(ber.SEQUENCE, b"")), AND
    ),
    "extensible match without a value at the bottom": nested(
        100, ber.tlv(0xA9, ber.octets("uid", 0x82)), OR
    ),
}


@pytest.mark.parametrize("ldap_filter", MALFORMED_DEEP.values(), ids=MALFORMED_DEEP.keys())
def test_a_deep_malformed_filter_is_a_bad_message(ldap_filter: bytes) -> None:
    op = ber.tlv(
        ber.SEARCH_REQUEST,
        ber.octets(PEOPLE) + ber.enumerated(2) + ber.enumerated(0) + ber.integer(0)
        + ber.integer(0) + ber.boolean(False) + ldap_filter + ber.tlv(ber.SEQUENCE, b""),
    )  # fmt: skip
    with pytest.raises(wire.BadMessage):
        wire.decode(ber.message(1, op))


@pytest.mark.parametrize("ldap_filter", UNREAD_BELOW.values(), ids=UNREAD_BELOW.keys())
def test_below_the_bound_a_deep_filter_is_not_read(ldap_filter: bytes) -> None:
    op = wire.decode(ber.message(1, search(ldap_filter))).op
    assert isinstance(op.filter, wire.DeepFilter)


def test_a_message_sized_chain_costs_the_bound_not_its_length() -> None:
    # 40,000 levels (256 KiB; 1 MiB holds ~250,000). Counted in steps, not timed: the walk
    # may look at no more elements than a few times the bound, whatever the chain's length.
    chain = nested(40_000, ber.present("uid"), NOT)
    steps = 0
    real = wire._element

    def counted(data: bytes, start: int, end: int) -> object:
        nonlocal steps
        steps += 1
        return real(data, start, end)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "_element", counted)
        op = wire.decode(ber.message(1, search(chain))).op
    assert isinstance(op.filter, wire.DeepFilter)
    assert steps < 20 * wire.MAX_NESTING, steps


DEEP_SEQUENCE = nested(1000, ber.octets("x"), ber.SEQUENCE)
DEEP_ELSEWHERE = {
    "in the attribute list": ber.tlv(
        ber.SEARCH_REQUEST,
        ber.octets(PEOPLE) + ber.enumerated(2) + ber.enumerated(0) + ber.integer(0)
        + ber.integer(0) + ber.boolean(False) + ber.present("uid")
        + ber.tlv(ber.SEQUENCE, DEEP_SEQUENCE),
    ),
    "as a bind name": ber.tlv(
        ber.BIND_REQUEST, ber.integer(3) + DEEP_SEQUENCE + ber.octets("pw", 0x80)
    ),
    "as an extended request's name": ber.tlv(ber.EXTENDED_REQUEST, DEEP_SEQUENCE),
}  # fmt: skip


@pytest.mark.parametrize("op", DEEP_ELSEWHERE.values(), ids=DEEP_ELSEWHERE.keys())
def test_deep_nesting_outside_a_filter_is_a_bad_message(op: bytes) -> None:
    with pytest.raises(wire.BadMessage):
        wire.decode(ber.message(1, op))


def test_a_deep_filter_does_not_excuse_deep_controls() -> None:
    # Control holds no constructed element (RFC 4511 §4.1.11).
    deep_filter = search(nested(100, ber.present("uid"), NOT))
    with pytest.raises(wire.BadMessage):
        wire.decode(ber.message(1, deep_filter, [ber.tlv(ber.SEQUENCE, DEEP_SEQUENCE)]))


def test_a_value_that_looks_like_deep_ber_is_only_a_value() -> None:
    # Primitive contents are never entered: a password or a control value of nested headers
    # is bytes like any other (RFC 4511 §5.1: OCTET STRINGs are primitive).
    looks_deep = nested(1000, b"", ber.SEQUENCE)
    bind = wire.decode(ber.message(1, ber.bind_request("cn=x", looks_deep)))
    assert bind.op.auth == looks_deep
    control = ber.control("1.2.3", critical=False, value=looks_deep)
    request = wire.decode(ber.message(2, search(ber.present("uid")), [control]))
    assert request.controls[0].value == looks_deep
