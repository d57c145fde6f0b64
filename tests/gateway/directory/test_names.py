"""Which attribute each kind of name is matched against (SPEC §6)."""

import pytest

from gateway.directory import NameKind
from gateway.directory.names import name_assertion
from tests.gateway.directory.conftest import ad_source, ldap_source

LDAP = ldap_source(["ldap://ldap.example.org"])
AD = ad_source()


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (NameKind.LOGIN, "alice", ("uid", "alice")),
        (NameKind.UPN, "alice@example.org", ("uid", "alice@example.org")),
        (NameKind.DOWNLEVEL, "EXAMPLE\\alice", None),
        (NameKind.LOGIN, "", None),
    ],
)
def test_ldap(kind: NameKind, value: str, expected: tuple[str, str] | None) -> None:
    assert name_assertion(kind, value, LDAP) == expected


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (NameKind.LOGIN, "ann", ("sAMAccountName", "ann")),
        (NameKind.UPN, "ann@corp.example", ("userPrincipalName", "ann@corp.example")),
        (NameKind.DOWNLEVEL, "CORP\\ann", ("sAMAccountName", "ann")),
        (NameKind.DOWNLEVEL, "corp\\ann", ("sAMAccountName", "ann")),
        (NameKind.DOWNLEVEL, "OTHER\\ann", None),
        (NameKind.DOWNLEVEL, "CORP\\", None),
        (NameKind.DOWNLEVEL, "ann", None),
        (NameKind.DOWNLEVEL, "CORP\\a\\b", ("sAMAccountName", "a\\b")),
    ],
)
def test_ad(kind: NameKind, value: str, expected: tuple[str, str] | None) -> None:
    assert name_assertion(kind, value, AD) == expected


def test_downlevel_needs_a_configured_domain() -> None:
    assert name_assertion(NameKind.DOWNLEVEL, "CORP\\ann", ad_source(netbios_domain=None)) is None


def test_dn_is_not_an_attribute_lookup() -> None:
    with pytest.raises(ValueError):
        name_assertion(NameKind.DN, "uid=a,dc=org", LDAP)
