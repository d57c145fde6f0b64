"""A read that stops early proves nobody gone (SPEC §5.3): the connector against a hostile slapd.

Each case is a real slapd playing a directory as operators leave them: an ordinary service
account under the server's default limits, a time or administrative limit, paging refused,
a root that is missing, renamed or a referral, a cookie the server refuses, the server
killed between two pages. `read_scope` must raise `IncompleteRead` naming what stopped it,
and never end as complete; single-user reads must not read a missing root as a deletion.
"""

from collections.abc import Callable
from typing import Any

import pytest

from gateway.directory import Directory, NameKind
from gateway.directory.completeness import Shortfall
from gateway.errors import IncompleteRead
from tests.gateway.bulkfixture import load_people, people
from tests.gateway.directory.conftest import PEOPLE, SERVICE_DN, ldap_source
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd

SUFFIX = "dc=example,dc=org"
CONTRACTORS = f"ou=contractors,{SUFFIX}"
#: The seed's users under ou=people; with `people(N)` loaded there are N more.
SEEDED = 5


def loaded(slapd_factory: Callable[..., Slapd], count: int, **options: Any) -> Slapd:
    server = slapd_factory(**options)
    load_people(server, people(count, server.people_dn))
    return server


def read_all(directory: Directory, page_size: int) -> tuple[list[str], IncompleteRead | None]:
    """The user names a read yielded, and what stopped it (None when it completed)."""
    read = directory.read_scope(page_size)
    names: list[str] = []
    try:
        for entry in read:
            names.append(str(entry.first("uid")))
    except IncompleteRead as exc:
        assert not read.complete
        return names, exc
    assert read.complete
    return names, None


def test_a_complete_read_says_so_root_by_root(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = loaded(slapd_factory, 450)
    directory = connect(ldap_source([server.url], roots=[PEOPLE, CONTRACTORS]))

    read = directory.read_scope(200)
    names = [entry.first("uid") for entry in read]

    assert read.complete
    assert len(names) == 450 + SEEDED + 1  # erin is the contractor
    assert [(r.root, r.entries, r.pages) for r in read.roots] == [
        (PEOPLE, 450 + SEEDED, 3),
        (CONTRACTORS, 1, 1),
    ]


def test_the_servers_default_size_limit_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    # No olcLimits at all: slapd applies its size limit of 500 to paged searches too.
    server = loaded(slapd_factory, 600, limits=[])
    directory = connect(ldap_source([server.url]))

    names, stopped = read_all(directory, 200)

    assert stopped is not None
    assert stopped.shortfall == Shortfall.SIZE_LIMIT.value
    assert len(names) == 500
    text = str(stopped)
    assert f"root {PEOPLE}" in text and server.url in text
    assert "after 500 entries" in text
    assert f'olcLimits: dn.exact="{SERVICE_DN}" size.prtotal=unlimited' in text


def test_a_paged_total_below_the_scope_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = loaded(
        slapd_factory, 600, limits=["users size.soft=500 size.hard=500 size.prtotal=400"]
    )
    directory = connect(ldap_source([server.url]))

    names, stopped = read_all(directory, 200)

    assert stopped is not None and stopped.shortfall == Shortfall.SIZE_LIMIT.value
    assert len(names) == 400


def test_a_time_limit_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = loaded(slapd_factory, 300, limits=["users time=1 size.prtotal=unlimited"])
    directory = connect(ldap_source([server.url], operation_timeout_seconds=8))
    read = directory.read_scope(100)
    first = next(read)  # page 1 is in
    assert first is not None
    # A delay past the account's time limit of 1 s: the next page answers timeLimitExceeded.
    server.set_delay(2)

    with pytest.raises(IncompleteRead) as stopped:
        list(read)

    assert stopped.value.shortfall == Shortfall.TIME_LIMIT.value
    assert not read.complete
    assert "time.hard=unlimited" in str(stopped.value)


def test_an_administrative_limit_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    # More candidates than the account may examine (size.unchecked).
    server = loaded(slapd_factory, 200, limits=["users size.unchecked=100 size.prtotal=unlimited"])
    directory = connect(ldap_source([server.url]))

    names, stopped = read_all(directory, 50)

    assert names == []
    assert stopped is not None and stopped.shortfall == Shortfall.ADMIN_LIMIT.value
    assert "size.unchecked" in str(stopped)


def test_paging_refused_to_the_account_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory(limits=["users size.prtotal=disabled"])
    directory = connect(ldap_source([server.url]))

    names, stopped = read_all(directory, 50)

    assert names == []
    assert stopped is not None and stopped.shortfall == Shortfall.PAGING_REFUSED.value
    assert "size.prtotal=disabled" in str(stopped)


def test_a_root_that_does_not_exist_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], roots=[PEOPLE, f"ou=peple,{SUFFIX}"]))

    names, stopped = read_all(directory, 50)

    assert len(names) == SEEDED  # the good root was read first, and its entries are real
    assert stopped is not None and stopped.shortfall == Shortfall.NO_ROOT.value
    assert stopped.root == f"ou=peple,{SUFFIX}"
    assert "correct the source's roots" in str(stopped)


def test_a_root_renamed_between_two_reads_stops_the_second(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], roots=[PEOPLE, CONTRACTORS]))
    assert read_all(directory, 50)[1] is None
    server.rename(CONTRACTORS, "ou=vendors")

    _, stopped = read_all(directory, 50)

    assert stopped is not None and stopped.shortfall == Shortfall.NO_ROOT.value
    assert stopped.root == CONTRACTORS


def test_a_root_that_is_a_referral_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    server.make_referral(CONTRACTORS)
    directory = connect(ldap_source([server.url], roots=[PEOPLE, CONTRACTORS]))

    _, stopped = read_all(directory, 50)

    assert stopped is not None and stopped.shortfall == Shortfall.REFERRAL.value
    assert "referrals are never followed" in str(stopped)


def test_a_referral_inside_a_root_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    # Under the suffix, ou=contractors now lives elsewhere: its users are unread, not gone.
    server = slapd_factory()
    server.make_referral(CONTRACTORS)
    directory = connect(ldap_source([server.url], roots=[SUFFIX]))

    _, stopped = read_all(directory, 500)

    assert stopped is not None and stopped.shortfall == Shortfall.REFERRAL_INSIDE.value


def test_a_server_killed_between_two_pages_stops_the_read(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    read = directory.read_scope(2)
    next(read)
    server.kill()

    with pytest.raises(IncompleteRead) as stopped:
        list(read)

    assert stopped.value.shortfall == Shortfall.CONNECTION_LOST.value
    assert not read.complete


def test_a_server_back_between_two_pages_is_read_again_from_the_roots_start(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    # The cookie belongs to the lost connection: the root is read again on a new one, and
    # nothing comes twice.
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    read = directory.read_scope(2)
    names = [str(next(read).first("uid"))]
    server.kill()
    server.start()

    names += [str(entry.first("uid")) for entry in read]

    assert read.complete
    assert sorted(names) == sorted({"alice", "bob", "carol", "dave", "frank"})


def test_a_cookie_the_server_refuses_stops_the_read(
    slapd_factory: Callable[..., Slapd],
    connect: Callable[..., Directory],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # slapd refuses a cookie it did not hand out ("paged results cookie is invalid"); the
    # request for page 2 carries a spoilt one.
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    search = Directory._search_on

    def spoil(self: Directory, *args: Any, paged: Any = None, **kwargs: Any) -> Any:
        if paged is not None and paged[1]:
            paged = (paged[0], b"\x00spoilt\x00")
        return search(self, *args, paged=paged, **kwargs)

    monkeypatch.setattr(Directory, "_search_on", spoil)

    names, stopped = read_all(directory, 2)

    assert len(names) == 2
    assert stopped is not None and stopped.shortfall == Shortfall.COOKIE_REFUSED.value


def test_single_user_reads_never_take_a_missing_root_for_a_deletion(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], roots=[PEOPLE, f"ou=gone,{SUFFIX}"]))
    alice = directory.find_user(NameKind.LOGIN, "alice")
    assert alice is not None  # found under the root that exists: a real answer

    assert directory.read_user(alice.external_id) is not None
    # Nobody under the good root: the user may be under the missing one. A failed read.
    with pytest.raises(IncompleteRead):
        directory.find_user(NameKind.LOGIN, "nobody-here")
    with pytest.raises(IncompleteRead):
        directory.read_user("7b3f2a9e-0000-4000-8000-000000000000")


def test_with_every_root_there_a_user_not_found_is_none(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], roots=[PEOPLE, CONTRACTORS]))

    assert directory.find_user(NameKind.LOGIN, "nobody-here") is None
    assert directory.read_user("7b3f2a9e-0000-4000-8000-000000000000") is None


def test_a_server_that_ignores_the_paged_control_proves_nothing(
    slapd_factory: Callable[..., Slapd],
    connect: Callable[..., Directory],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 2696 §3: the server MUST answer with the control. One that leaves it out may have
    # cut the page short without a word (the answer here is slapd's, the control removed).
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    search = Directory._search_on

    def ignore(self: Directory, *args: Any, **kwargs: Any) -> Any:
        responses, result = search(self, *args, **kwargs)
        return responses, {**result, "controls": {}}

    monkeypatch.setattr(Directory, "_search_on", ignore)

    names, stopped = read_all(directory, 500)

    assert stopped is not None and stopped.shortfall == Shortfall.PAGING_IGNORED.value
    assert names == []
