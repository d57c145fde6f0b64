"""to_source_user: attribute map, phones, groups, policy, and status that fails closed."""

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from gateway.config import LdapSource
from gateway.directory import Directory, DirectoryEntry, IncompleteEntry, NameKind, to_source_user
from gateway.engine.plan import Email
from gateway.engine.types import SourceStatus
from tests.gateway.directory.conftest import ad_source, ldap_source
from tests.servers.slapd import Slapd

NOW = datetime(2025, 6, 1, tzinfo=UTC)
SOURCE = ldap_source(["ldap://ldap.example.org"])


def entry(**attributes: tuple[str, ...]) -> DirectoryEntry:
    values = {"uid": ("ann",), **{name.lower(): v for name, v in attributes.items()}}
    return DirectoryEntry("uid=ann,ou=people,dc=example,dc=org", "id-1", values)


def test_fields() -> None:
    user = to_source_user(
        entry(
            cn=("Ann Example",),
            givenName=("Ann",),
            sn=("Example",),
            mail=("ann@example.org", "a.example@example.org", "ann@example.org"),
            mobile=("+1 202 555 0101", "+1 202 555 0102"),
            telephoneNumber=("+1 202 555 0111",),
            memberOf=("cn=b,dc=org", "CN=a,dc=org"),
            title=("Engineer",),
        ),
        SOURCE,
        NOW,
    )

    assert user.external_id == "id-1"
    assert user.user_name == "ann"
    assert user.dn == "uid=ann,ou=people,dc=example,dc=org"
    assert (user.display_name, user.given_name, user.family_name) == (
        "Ann Example",
        "Ann",
        "Example",
    )
    assert user.emails == (
        Email("ann@example.org", type="work", primary=True),
        Email("a.example@example.org", type="work", primary=False),
    )
    assert user.sms_phones == ("+1 202 555 0101", "+1 202 555 0102")
    assert user.voice_phones == ("+1 202 555 0111",)
    assert user.groups == ("CN=a,dc=org", "cn=b,dc=org")
    assert user.policy == (("departmentNumber", ()), ("title", ("Engineer",)))
    assert user.status is SourceStatus.ENABLED
    assert user.upn is None


def test_phones_unmapped_are_none_mapped_but_empty_are_empty() -> None:
    unmapped = ldap_source(["ldap://x"], attributes={})

    assert to_source_user(entry(), unmapped, NOW).sms_phones is None
    assert to_source_user(entry(), unmapped, NOW).voice_phones is None
    assert to_source_user(entry(), SOURCE, NOW).sms_phones == ()
    assert to_source_user(entry(), SOURCE, NOW).voice_phones == ()


def test_user_name_attribute_can_differ_from_login() -> None:
    source = ldap_source(["ldap://x"], attributes={"user_name": "mail"})

    assert to_source_user(entry(mail=("ann@example.org",)), source, NOW).user_name == (
        "ann@example.org"
    )


def test_no_user_name_is_an_incomplete_entry() -> None:
    bare = DirectoryEntry("uid=ann,dc=org", "id-1", {"cn": ("Ann",)})

    with pytest.raises(IncompleteEntry, match="uid"):
        to_source_user(bare, SOURCE, NOW)


@pytest.mark.parametrize(
    ("attributes", "status"),
    [
        ({}, SourceStatus.ENABLED),
        ({"shadowExpire": ("1",)}, SourceStatus.EXPIRED),
        ({"shadowExpire": ("47482",)}, SourceStatus.ENABLED),
        ({"pwdAccountLockedTime": ("000001010000Z",)}, SourceStatus.DISABLED),
    ],
)
def test_status(attributes: dict[str, tuple[str, ...]], status: SourceStatus) -> None:
    assert to_source_user(entry(**attributes), SOURCE, NOW).status is status


def test_a_malformed_status_attribute_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        user = to_source_user(entry(shadowExpire=("next-tuesday",)), SOURCE, NOW)

    assert user.status is SourceStatus.DISABLED
    assert "shadowExpire" in caplog.text and "corp" in caplog.text
    assert "next-tuesday" not in caplog.text


def test_ad_status_and_upn() -> None:
    source = ad_source()
    base = {
        "samaccountname": ("ann",),
        "userprincipalname": ("ann@corp.example",),
        "useraccountcontrol": ("512",),
        "accountexpires": ("9223372036854775807",),
    }

    def status(**changes: tuple[str, ...]) -> SourceStatus:
        ad_entry = DirectoryEntry("CN=Ann,OU=Staff,DC=corp,DC=example", "g", {**base, **changes})
        return to_source_user(ad_entry, source, NOW).status

    ad_entry = DirectoryEntry("CN=Ann,OU=Staff,DC=corp,DC=example", "g", base)
    assert to_source_user(ad_entry, source, NOW).upn == "ann@corp.example"
    assert status() is SourceStatus.ENABLED
    assert status(useraccountcontrol=("514",)) is SourceStatus.DISABLED
    # 2024-01-01 as FILETIME: in the past.
    assert status(accountexpires=("133485408000000000",)) is SourceStatus.EXPIRED
    assert status(accountexpires=("0",)) is SourceStatus.ENABLED
    assert status(useraccountcontrol=("x",)) is SourceStatus.DISABLED


# -- against the seed directory -----------------------------------------------------------


def seed_user(directory: Directory, uid: str) -> DirectoryEntry:
    found = directory.find_user(NameKind.LOGIN, uid)
    assert found is not None
    return found


def test_alice_from_the_directory(slapd: Slapd, corp: Directory) -> None:
    alice = slapd.users["alice"]

    user = to_source_user(seed_user(corp, "alice"), corp_source(slapd), NOW)

    assert user.user_name == "alice"
    assert user.dn == alice.dn
    assert user.display_name == "Alice Liddell"
    assert user.emails == (Email("alice@example.org", type="work", primary=True),)
    assert user.sms_phones == alice.attributes["mobile"]
    assert user.voice_phones == alice.attributes["telephoneNumber"]
    assert {group.lower() for group in user.groups} == {
        f"cn={name},{slapd.groups_dn}" for name in alice.groups
    }
    assert user.status is SourceStatus.ENABLED


@pytest.mark.parametrize(
    ("uid", "status"),
    [
        ("alice", SourceStatus.ENABLED),
        ("bob", SourceStatus.DISABLED),
        ("carol", SourceStatus.EXPIRED),
        ("dave", SourceStatus.ENABLED),
        ("frank", SourceStatus.ENABLED),
    ],
)
def test_seed_statuses(slapd: Slapd, corp: Directory, uid: str, status: SourceStatus) -> None:
    assert to_source_user(seed_user(corp, uid), corp_source(slapd), NOW).status is status


def test_a_malformed_value_in_the_directory_fails_closed(
    slapd: Slapd, connect: Callable[..., Directory], caplog: pytest.LogCaptureFixture
) -> None:
    # shadowExpire is an INTEGER to slapd; map a text attribute as the expiry instead.
    uid = f"odd-{uuid.uuid4().hex[:8]}"
    slapd.add_user(uid, title="whenever")
    source = ldap_source(
        [slapd.url], status={"expiration_attribute": "title", "expiration_format": "days"}
    )

    with caplog.at_level(logging.WARNING):
        user = to_source_user(seed_user(connect(source), uid), source, NOW)

    assert user.status is SourceStatus.DISABLED
    assert "title" in caplog.text and "whenever" not in caplog.text


def corp_source(slapd: Slapd) -> LdapSource:
    return ldap_source([slapd.url])
