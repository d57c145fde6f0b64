"""find_user against the seed directory: names, DNs, scope, ambiguity, filter injection."""

import logging
import re
import uuid
from collections.abc import Callable

import pytest

from gateway.directory import Directory, NameKind
from tests.gateway.directory.conftest import ldap_source
from tests.servers.slapd import Slapd

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_find_by_login(slapd: Slapd, corp: Directory) -> None:
    entry = corp.find_user(NameKind.LOGIN, "alice")

    assert entry is not None
    assert entry.dn == slapd.users["alice"].dn
    assert UUID.match(entry.external_id)
    assert entry.attributes["entryuuid"] == (entry.external_id,)
    assert entry.attributes["mail"] == ("alice@example.org",)
    assert all(name == name.lower() for name in entry.attributes)
    assert "userpassword" not in entry.attributes


@pytest.mark.parametrize("name", ["ALICE", "Alice", "aLiCe"])
def test_login_names_match_case_insensitively(corp: Directory, name: str) -> None:
    expected = corp.find_user(NameKind.LOGIN, "alice")
    assert expected is not None

    assert corp.find_user(NameKind.LOGIN, name) == expected


def test_unknown_login(corp: Directory) -> None:
    assert corp.find_user(NameKind.LOGIN, unique("nobody")) is None


@pytest.mark.parametrize(
    "spelling",
    [
        "uid=alice,ou=people,dc=example,dc=org",
        "UID=Alice,OU=People,DC=Example,DC=Org",
        "uid=alice, ou=people, dc=example, dc=org",
        "uid = alice , ou=people,dc=example,dc=org",
    ],
)
def test_find_by_dn(slapd: Slapd, corp: Directory, spelling: str) -> None:
    entry = corp.find_user(NameKind.DN, spelling)

    assert entry is not None
    # The DN to bind with is the directory's, not the client's spelling.
    assert entry.dn.lower() == slapd.users["alice"].dn
    assert entry == corp.find_user(NameKind.LOGIN, "alice")


@pytest.mark.parametrize(
    "dn",
    [
        "uid=erin,ou=contractors,dc=example,dc=org",
        "cn=idgate,ou=services,dc=example,dc=org",
        "dc=example,dc=org",
        "uid=alice,ou=people,dc=example,dc=com",
        "not a dn",
        "",
    ],
)
def test_dn_outside_the_roots_is_not_searched(slapd: Slapd, corp: Directory, dn: str) -> None:
    searches = slapd.count_operations("SRCH")

    assert corp.find_user(NameKind.DN, dn) is None
    assert slapd.count_operations("SRCH") == searches


def test_dn_under_the_root_that_does_not_exist(corp: Directory) -> None:
    assert corp.find_user(NameKind.DN, f"uid={unique()},ou=people,dc=example,dc=org") is None


def test_dn_of_an_entry_that_is_not_a_user(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    # ou=people itself is inside the root but no inetOrgPerson.
    assert connect(ldap_source([slapd.url])).find_user(NameKind.DN, slapd.people_dn) is None


def test_erin_is_out_of_scope(slapd: Slapd, corp: Directory) -> None:
    assert corp.find_user(NameKind.LOGIN, "erin") is None
    assert corp.find_user(NameKind.DN, slapd.users["erin"].dn) is None


def test_the_user_filter_limits_the_scope(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url], user_filter="(!(uid=frank))"))

    assert directory.find_user(NameKind.LOGIN, "frank") is None
    assert directory.find_user(NameKind.DN, slapd.users["frank"].dn) is None
    assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_several_roots(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url], roots=[slapd.contractors_dn, slapd.people_dn]))

    assert directory.find_user(NameKind.LOGIN, "erin") is not None
    assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_overlapping_roots_find_one_entry(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url], roots=[slapd.people_dn, slapd.suffix]))

    assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_a_missing_root_is_skipped(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    missing = f"ou={unique()},{slapd.suffix}"
    directory = connect(ldap_source([slapd.url], roots=[missing, slapd.people_dn]))

    assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_ambiguous_names_never_match(
    slapd: Slapd, connect: Callable[..., Directory], caplog: pytest.LogCaptureFixture
) -> None:
    surname = unique("twin")
    first = slapd.add_user(unique(), sn=surname)
    second = slapd.add_user(unique(), sn=surname)
    directory = connect(ldap_source([slapd.url], login_attribute="sn"))

    with caplog.at_level(logging.WARNING):
        assert directory.find_user(NameKind.LOGIN, surname) is None

    assert "ambiguous" in caplog.text
    assert first in caplog.text and second in caplog.text
    slapd.delete(second)
    assert directory.find_user(NameKind.LOGIN, surname) is not None


def test_upn_on_an_ldap_source_is_the_whole_login(
    slapd: Slapd, connect: Callable[..., Directory]
) -> None:
    name = f"{unique()}@example.org"
    slapd.add_user(name)
    directory = connect(ldap_source([slapd.url]))

    found = directory.find_user(NameKind.UPN, name.upper())

    assert found is not None and found.first("uid") == name


def test_downlevel_names_never_match_an_ldap_source(slapd: Slapd, corp: Directory) -> None:
    searches = slapd.count_operations("SRCH")

    assert corp.find_user(NameKind.DOWNLEVEL, "EXAMPLE\\alice") is None
    assert slapd.count_operations("SRCH") == searches


INJECTIONS = [
    "*",
    "alic*",
    "*lice",
    "*)(uid=*",
    "alice)(uid=*",
    "alice)(|(uid=*",
    "alice)(objectClass=*",
    "\\00",
    "\\2a",
    "alice\\",
    "(",
    ")",
    "\x00",
    "alice\x00",
    "alice\udc80",
    "uid=alice",
    "alice))(|(uid=bob",
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("kind", [NameKind.LOGIN, NameKind.UPN])
def test_filter_injection_never_matches(corp: Directory, kind: NameKind, value: str) -> None:
    # Unescaped, each of these would find alice (or everybody); escaped, nobody.
    assert corp.find_user(kind, value) is None


@pytest.mark.parametrize("value", INJECTIONS)
def test_filter_injection_in_a_dn_never_matches(corp: Directory, value: str) -> None:
    assert corp.find_user(NameKind.DN, f"uid={value},ou=people,dc=example,dc=org") is None


def test_escaped_values_reach_the_server_escaped(slapd: Slapd, corp: Directory) -> None:
    marker = unique("m")

    assert corp.find_user(NameKind.LOGIN, f"{marker}*)(uid=*") is None

    # slapd logs the filter it parsed: the value is one assertion, its specials escaped.
    assert slapd.count_operations("SRCH", contains=f"(uid={marker}\\2A\\29\\28uid=\\2A)") == 1
