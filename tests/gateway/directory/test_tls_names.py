"""Certificate name matching (RFC 6125): subjectAltName only, whole-label wildcards."""

from typing import Any

import pytest

from gateway.directory.tls import certificate_matches

CERT: dict[str, Any] = {
    "subject": ((("commonName", "cn-only.example.org"),),),
    "subjectAltName": (
        ("DNS", "dc1.corp.example"),
        ("DNS", "*.ldap.example.org"),
        ("IP Address", "10.0.0.5"),
        ("IP Address", "2001:DB8:0:0:0:0:0:1\n"),
    ),
}


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("dc1.corp.example", True),
        ("DC1.Corp.Example.", True),
        ("dc2.corp.example", False),
        ("a.ldap.example.org", True),
        ("ldap.example.org", False),
        ("a.b.ldap.example.org", False),
        ("10.0.0.5", True),
        ("10.0.0.6", False),
        ("2001:db8::1", True),
        ("cn-only.example.org", False),  # SANs present: the subject CN does not count
    ],
)
def test_one_name(name: str, matches: bool) -> None:
    assert certificate_matches(CERT, [name]) is matches


def test_any_of_several_names() -> None:
    assert certificate_matches(CERT, ["wrong.example", "dc1.corp.example"])
    assert not certificate_matches(CERT, ["wrong.example", "10.9.9.9"])


def test_wildcards_never_cover_a_top_level_domain() -> None:
    assert not certificate_matches({"subjectAltName": (("DNS", "*.org"),)}, ["example.org"])


def test_without_dns_sans_the_subject_cn_counts() -> None:
    # Samba's generated certificate: CN=DC1.idgate.test, no subjectAltName.
    samba = {"subject": ((("commonName", "DC1.idgate.test"),),)}

    assert certificate_matches(samba, ["dc1.idgate.test"])
    assert not certificate_matches(samba, ["dc2.idgate.test"])
    assert not certificate_matches({"subject": ((("commonName", "10.0.0.5"),),)}, ["10.0.0.5"])
    assert not certificate_matches({"subject": ()}, ["cn-only.example.org"])
