"""read_scope: the whole scope with Simple Paged Results, page by page."""

from collections.abc import Callable

from gateway.directory import Directory, NameKind
from tests.gateway.directory.conftest import ldap_source
from tests.servers.slapd import Slapd

IN_SCOPE = {"alice", "bob", "carol", "dave", "frank"}


def test_all_in_scope_users_in_pages_of_two(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    searches = server.count_operations("SRCH")

    entries = list(directory.read_scope(page_size=2))

    assert {entry.first("uid") for entry in entries} == IN_SCOPE
    assert len(entries) == len(IN_SCOPE)
    assert all(entry.dn == server.users[str(entry.first("uid"))].dn for entry in entries)
    # 5 entries, 2 per page: 3 requests.
    assert server.count_operations("SRCH") - searches == 3


def test_pages_are_streamed(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    searches = server.count_operations("SRCH")

    users = directory.read_scope(page_size=2)
    first = next(users)

    assert first.first("uid") in IN_SCOPE
    assert server.count_operations("SRCH") - searches == 1
    users.close()


def test_past_the_plain_size_limit(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    # The fixture caps plain searches at 500 entries; paged ones go on.
    server = slapd_factory(seed_users=False)
    with server.admin_connection() as admin:
        for i in range(520):
            admin.add(f"uid=bulk{i},{server.people_dn}", ["inetOrgPerson"], {"cn": "b", "sn": "b"})
    directory = connect(ldap_source([server.url]))

    assert len(list(directory.read_scope())) == 520


def test_overlapping_roots_yield_each_user_once(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], roots=[server.people_dn, server.suffix]))

    uids = [entry.first("uid") for entry in directory.read_scope(page_size=2)]

    assert sorted(uids, key=str) == sorted({*IN_SCOPE, "erin"})


def test_the_user_filter_applies(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url], user_filter="(!(uid=bob))"))

    assert {e.first("uid") for e in directory.read_scope()} == IN_SCOPE - {"bob"}


def test_bulk_reads_leave_the_pool_alone(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url], pool_size=1))
    users = directory.read_scope(page_size=1)
    next(users)

    # The only pooled service connection is still free for a JIT lookup.
    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    users.close()


def test_supports_paged_results(corp: Directory) -> None:
    assert corp.supports_paged_results() is True
