"""The attributes every user search asks for."""

from gateway.directory.attributes import requested_attributes
from tests.gateway.directory.conftest import ad_source, ldap_source


def test_ldap_source() -> None:
    source = ldap_source(["ldap://x"], attributes={"groups": "memberOf", "policy": ["title"]})

    assert requested_attributes(source) == (
        "entryUUID", "uid", "cn", "givenName", "sn", "mail", "memberOf", "title",
        "pwdAccountLockedTime", "shadowExpire", "objectClass",
    )  # fmt: skip


def test_ad_source_adds_the_computed_flags_and_names() -> None:
    names = requested_attributes(ad_source())

    for name in (
        "objectGUID", "sAMAccountName", "userPrincipalName", "userAccountControl",
        "accountExpires", "msDS-User-Account-Control-Computed", "pwdLastSet", "memberOf",
    ):  # fmt: skip
        assert name in names
    assert len({name.lower() for name in names}) == len(names)


def test_passwords_are_never_requested() -> None:
    source = ldap_source(["ldap://x"], attributes={"policy": ["userPassword", "UnicodePwd"]})

    assert {"userpassword", "unicodepwd"}.isdisjoint(
        a.lower() for a in requested_attributes(source)
    )
