"""Filters nested at any depth a message can carry, and search bases with control characters,
in-process over the real store (SQLite and PostgreSQL): each gets an LDAP result on its own
messageID and the connection serves the next request (RFC 4511 §4.5.1.7, §4.1.1; RFC 4514 §3).

Frames are written with tests/ldapproxy/ber.py, independent of ldaptor.
"""

from typing import Any

import pytest
from ldaptor.protocols import pureldap

from ldapproxy import filters, wire
from store.db import Store
from tests.ldapproxy import ber
from tests.ldapproxy.test_unit_protocol import (
    ROOT,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Harness,
    _names,
    _seed,
)

MAX_MESSAGE_BYTES = 65536  # Harness's limit
UNWILLING_TO_PERFORM = 53
WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"
AND, OR, NOT = 0xA0, 0xA1, 0xA2


def nested(depth: int, leaf: bytes, tag: int) -> bytes:
    for _ in range(depth):
        leaf = ber.tlv(tag, leaf)
    return leaf


def deepest(leaf: bytes, tag: int, limit: int) -> tuple[int, bytes]:
    """The deepest (depth, filter) whose search message still fits in `limit` bytes."""
    depth, ldap_filter = 0, leaf
    while True:
        deeper = ber.tlv(tag, ldap_filter)
        if len(ber.message(2**31 - 1, ber.search_request(ROOT, deeper))) > limit:
            return depth, ldap_filter
        depth, ldap_filter = depth + 1, deeper


@pytest.fixture
def bound(store: Store) -> Harness:
    _seed(store, count=2)
    harness = Harness(store)
    assert harness.bind(SERVICE_DN, SERVICE_PASSWORD).resultCode == 0
    return harness


def answers(harness: Harness, frame: bytes) -> list[Any]:
    harness.connection.dataReceived(frame)
    return harness.responses()


def assert_still_serving(harness: Harness, message_id: int) -> None:
    (who,) = answers(harness, ber.message(message_id, ber.extended_request(WHO_AM_I)))
    assert who.id == message_id and who.value.resultCode == 0
    assert not harness.transport.disconnecting


@pytest.mark.parametrize("tag", [AND, OR, NOT], ids=["and", "or", "not"])
@pytest.mark.parametrize("depth", [63, 64, 240, 245, 1000, None], ids=lambda d: f"depth-{d}")
def test_a_filter_nested_too_deeply_gets_53_and_the_connection_lives(
    bound: Harness, tag: int, depth: int | None
) -> None:
    leaf = ber.tlv(0xA3, ber.octets("uid") + ber.octets("user1"))
    if depth is None:  # as deep as the message size limit allows
        depth, ldap_filter = deepest(leaf, tag, MAX_MESSAGE_BYTES)
        assert depth > 16_000
    else:
        ldap_filter = nested(depth, leaf, tag)
    frame = ber.message(2**31 - 1, ber.search_request(ROOT, ldap_filter))
    assert len(frame) <= MAX_MESSAGE_BYTES

    (done,) = answers(bound, frame)

    assert done.id == 2**31 - 1
    assert isinstance(done.value, pureldap.LDAPSearchResultDone)
    assert done.value.resultCode == UNWILLING_TO_PERFORM
    assert done.value.errorMessage == b"filter nested too deeply or too large"
    assert_still_serving(bound, 5)


@pytest.mark.parametrize("tag", [AND, OR, NOT], ids=["and", "or", "not"])
def test_a_filter_at_the_depth_limit_is_evaluated(bound: Harness, tag: int) -> None:
    leaf = ber.tlv(0xA3, ber.octets("uid") + ber.octets("user1"))
    limit = filters.MAX_DEPTH
    at_limit = answers(bound, ber.message(2, ber.search_request(ROOT, nested(limit, leaf, tag))))
    over = answers(bound, ber.message(3, ber.search_request(ROOT, nested(limit + 1, leaf, tag))))
    user = "user1" if tag != NOT or limit % 2 == 0 else "user0"
    assert _names([m.value for m in at_limit]) == [f"uid={user},{ROOT}"]
    assert at_limit[-1].value.resultCode == 0
    assert [m.value.resultCode for m in over] == [UNWILLING_TO_PERFORM]


@pytest.mark.parametrize("negated", [False, True], ids=["plain", "negated-leaves"])
def test_the_deepest_filter_evaluated_runs_on_the_store(bound: Harness, negated: bool) -> None:
    # The costliest shape for SQL: AND and OR alternating (a parenthesized term per level),
    # two items each, on a multi-valued attribute (an EXISTS per item).
    leaf = ber.tlv(0xA3, ber.octets("mail") + ber.octets("user1@example.org"))
    if negated:
        leaf = ber.tlv(NOT, leaf)
    ldap_filter = leaf
    for level in range(filters.MAX_DEPTH - negated):  # a NOT is a level (RFC 4511 §4.5.1.7)
        ldap_filter = ber.tlv(AND if level % 2 else OR, leaf + ldap_filter)
    (*entries, done) = answers(bound, ber.message(2, ber.search_request(ROOT, ldap_filter)))
    assert done.value.resultCode == 0, done.value.errorMessage
    names = _names([m.value for m in entries])
    # The container has no mail (FALSE), so its NOT is TRUE.
    assert names == ([ROOT, f"uid=user0,{ROOT}"] if negated else [f"uid=user1,{ROOT}"])


def test_a_deep_filter_on_the_root_dse_and_in_a_paged_search_gets_53(bound: Harness) -> None:
    deep = nested(5000, ber.present("objectClass"), NOT)
    (root,) = answers(bound, ber.message(2, ber.search_request("", deep, scope=0)))
    assert root.value.resultCode == UNWILLING_TO_PERFORM
    paged = ber.control(
        wire.PAGED_RESULTS.decode(),
        critical=True,
        value=ber.tlv(ber.SEQUENCE, ber.integer(10) + ber.octets(b"")),
    )
    (page,) = answers(bound, ber.message(3, ber.search_request(ROOT, deep), [paged]))
    assert page.value.resultCode == UNWILLING_TO_PERFORM
    assert_still_serving(bound, 4)


def test_deep_nesting_outside_a_filter_ends_the_connection(bound: Harness) -> None:
    # Only a Filter nests in a well-formed LDAPMessage (RFC 4511 Appendix B).
    deep_name = nested(1000, ber.octets("x"), ber.SEQUENCE)
    op = ber.tlv(ber.BIND_REQUEST, ber.integer(3) + deep_name + ber.octets("pw", 0x80))
    bound.connection.dataReceived(ber.message(2, op))
    (notice,) = bound.responses()
    assert notice.id == 0 and notice.value.responseName == wire.NOTICE_OF_DISCONNECTION
    assert notice.value.resultCode == 2
    assert bound.transport.disconnecting


BASES: dict[str, tuple[bytes, int]] = {
    # What slapd answers: NUL is no DN character unescaped; \01 and \00 name no entry.
    "NUL in a value": (b"uid=user1\x00," + ROOT.encode(), 34),
    "NUL at the end": (ROOT.encode() + b"\x00", 34),
    "only NUL": (b"\x00", 34),
    "U+0001 in a value": (b"uid=us\x01er1," + ROOT.encode(), 32),
    "escaped NUL": (b"uid=user1\\00," + ROOT.encode(), 32),
}


@pytest.mark.parametrize("base, code", BASES.values(), ids=BASES.keys())
def test_a_base_with_a_control_character_is_answered(
    bound: Harness, base: bytes, code: int
) -> None:
    op = ber.tlv(
        ber.SEARCH_REQUEST,
        ber.octets(base) + ber.enumerated(0) + ber.enumerated(0) + ber.integer(0)
        + ber.integer(0) + ber.boolean(False) + ber.present("objectClass")
        + ber.tlv(ber.SEQUENCE, b""),
    )  # fmt: skip
    (done,) = answers(bound, ber.message(2, op))
    assert done.value.resultCode == code, done.value.errorMessage
    assert_still_serving(bound, 3)


def test_subtree_searches_under_a_base_with_nul_find_nobody(bound: Harness) -> None:
    for scope in (1, 2):
        base = b"uid=user1\x00," + ROOT.encode()
        op = ber.tlv(
            ber.SEARCH_REQUEST,
            ber.octets(base) + ber.enumerated(scope) + ber.enumerated(0) + ber.integer(0)
            + ber.integer(0) + ber.boolean(False) + ber.present("objectClass")
            + ber.tlv(ber.SEQUENCE, b""),
        )  # fmt: skip
        (done,) = answers(bound, ber.message(2, op))
        assert done.value.resultCode == 34
