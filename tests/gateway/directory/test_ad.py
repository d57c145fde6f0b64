"""The connector against a real Active Directory (Samba AD DC): names, GUIDs, data codes, TLS."""

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import AdSource
from gateway.directory import BindResult, Directory, NameKind, to_source_user
from gateway.engine.types import SourceStatus
from gateway.errors import UpstreamUnavailable
from tests.reactor import blocking
from tests.servers.samba import SambaAD

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SEED_IN_SCOPE = {"alice", "bob", "carol", "dave", "frank"}


def samba_source(dc: SambaAD, **overrides: Any) -> AdSource:
    data: dict[str, Any] = {
        "id": "ad",
        "kind": "ad",
        "urls": [dc.url],
        "bind_dn": dc.service_dn,
        "bind_password": dc.service_password,
        "roots": [dc.people_dn],
        "netbios_domain": dc.netbios_domain,
        "upn_suffixes": ["idgate.test"],
        "connect_timeout_seconds": 3,
        "operation_timeout_seconds": 10,
        "attributes": {
            "email": "mail",
            "sms_phone": "mobile",
            "voice_phone": "telephoneNumber",
            "policy": ["title", "department"],
        },
    }
    data.update(overrides)
    return AdSource.model_validate(data)


@pytest.fixture
def ad(samba_ad: SambaAD, connect: Callable[..., Directory]) -> Directory:
    return connect(samba_source(samba_ad))


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (NameKind.LOGIN, "frank"),
        (NameKind.LOGIN, "FRANK"),
        (NameKind.UPN, "Frank.Jones@idgate.test"),
        (NameKind.DOWNLEVEL, "idgate\\frank"),
        (NameKind.DOWNLEVEL, "IDGATE\\Frank"),
    ],
)
def test_every_name_form_finds_the_user(
    samba_ad: SambaAD, ad: Directory, kind: NameKind, name: str
) -> None:
    entry = ad.find_user(kind, name)

    assert entry is not None
    assert entry.dn.lower() == samba_ad.users["frank"].dn.lower()
    assert GUID.match(entry.external_id)
    assert entry.attributes["objectguid"] == (entry.external_id,)
    assert entry.first("userPrincipalName") == "frank.jones@idgate.test"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (NameKind.DOWNLEVEL, "OTHER\\frank"),
        (NameKind.UPN, "frank@idgate.test"),  # his UPN is frank.jones@
        (NameKind.LOGIN, "erin"),  # OU=Contractors: out of scope
        (NameKind.LOGIN, "idgate-svc"),  # OU=Services
        (NameKind.LOGIN, "fr*"),
        (NameKind.LOGIN, "*"),
    ],
)
def test_names_that_must_not_match(ad: Directory, kind: NameKind, name: str) -> None:
    assert ad.find_user(kind, name) is None


def test_find_by_dn(samba_ad: SambaAD, ad: Directory) -> None:
    alice = samba_ad.users["alice"]

    entry = ad.find_user(NameKind.DN, alice.dn.upper().replace(",", ", "))

    assert entry is not None and entry.first("sAMAccountName") == "alice"
    assert ad.find_user(NameKind.DN, samba_ad.users["erin"].dn) is None


def test_read_user_by_object_guid(ad: Directory) -> None:
    alice = ad.find_user(NameKind.LOGIN, "alice")
    assert alice is not None

    assert ad.read_user(alice.external_id) == alice
    assert ad.read_user(alice.external_id.upper()) == alice
    assert ad.read_user(str(uuid.uuid4())) is None
    assert ad.read_user("not-a-guid") is None


def test_a_user_moved_out_of_scope(samba_ad: SambaAD, ad: Directory) -> None:
    sam = f"mv{uuid.uuid4().hex[:8]}"
    user = samba_ad.add_user(sam)
    entry = ad.find_user(NameKind.LOGIN, sam)
    assert entry is not None

    samba_ad.delete(user.dn)

    assert ad.read_user(entry.external_id) is None


@pytest.mark.parametrize(
    ("sam", "expected"),
    [
        ("alice", BindResult.OK),
        ("bob", BindResult.ACCOUNT_DISABLED),  # data 533
        ("carol", BindResult.ACCOUNT_EXPIRED),  # data 701
        ("dave", BindResult.MUST_CHANGE_PASSWORD),  # data 773
    ],
)
def test_data_codes_are_decoded(
    samba_ad: SambaAD, ad: Directory, sam: str, expected: BindResult
) -> None:
    user = samba_ad.users[sam]

    assert blocking(ad.verify, user.dn, user.password) is expected
    assert blocking(ad.verify, user.dn, "Wr0ng!password") is BindResult.INVALID_CREDENTIALS


def test_an_empty_password_never_reaches_ad(samba_ad: SambaAD, ad: Directory) -> None:
    # AD would answer an unauthenticated bind with success (RFC 4513 §5.1.2).
    alice = samba_ad.users["alice"]
    binds = samba_ad.count_binds(account="alice")

    assert blocking(ad.verify, alice.dn, "") is BindResult.INVALID_CREDENTIALS
    assert samba_ad.count_binds(account="alice") == binds


NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sam", "status"),
    [
        ("alice", SourceStatus.ENABLED),
        ("bob", SourceStatus.DISABLED),
        ("carol", SourceStatus.EXPIRED),
        ("dave", SourceStatus.ENABLED),
        ("frank", SourceStatus.ENABLED),
    ],
)
def test_status_mapping(samba_ad: SambaAD, ad: Directory, sam: str, status: SourceStatus) -> None:
    entry = ad.find_user(NameKind.LOGIN, sam)
    assert entry is not None

    assert to_source_user(entry, samba_source(samba_ad), NOW).status is status


def test_alice_mapped(samba_ad: SambaAD, ad: Directory) -> None:
    alice = samba_ad.users["alice"]
    entry = ad.find_user(NameKind.LOGIN, "alice")
    assert entry is not None

    user = to_source_user(entry, samba_source(samba_ad), NOW)

    assert user.user_name == "alice"
    assert user.upn == alice.upn
    assert user.display_name == "Alice Liddell"
    assert [email.value for email in user.emails] == ["alice@idgate.test"]
    assert user.sms_phones == ("+1 202 555 0101",)
    assert user.voice_phones == ("+1 202 555 0111",)
    assert {group.lower() for group in user.groups} == {dn.lower() for dn in alice.groups}
    assert user.policy == (("department", ("Research",)), ("title", ("Engineer",)))
    # The computed flags the authentication path reads are fetched too.
    assert "msds-user-account-control-computed" in entry.attributes


def test_paged_bulk_read(ad: Directory) -> None:
    assert ad.supports_paged_results() is True

    names = [entry.first("sAMAccountName") for entry in ad.read_scope(page_size=2)]

    assert SEED_IN_SCOPE.issubset(names)
    assert "erin" not in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("bind_name", ["upn", "downlevel"])
def test_service_account_by_windows_names(
    samba_ad: SambaAD, connect: Callable[..., Directory], bind_name: str
) -> None:
    name = samba_ad.service_upn if bind_name == "upn" else f"IDGATE\\{samba_ad.service_account.sam}"
    directory = connect(samba_source(samba_ad, bind_dn=name))

    assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_ldaps_with_the_certificates_name(
    samba_ad: SambaAD, connect: Callable[..., Directory]
) -> None:
    directory = connect(
        samba_source(
            samba_ad,
            urls=[samba_ad.ldaps_url],
            ca_file=str(samba_ad.ca_file),
            tls_server_names=[samba_ad.tls_server_name],
        )
    )
    alice = samba_ad.users["alice"]

    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK


def test_ldaps_to_the_address_fails_the_name_check(
    samba_ad: SambaAD, connect: Callable[..., Directory]
) -> None:
    # The certificate names DC1.idgate.test, not the address in the URL.
    directory = connect(
        samba_source(samba_ad, urls=[samba_ad.ldaps_url], ca_file=str(samba_ad.ca_file))
    )

    with pytest.raises(UpstreamUnavailable, match="TLS certificate names another host"):
        directory.find_user(NameKind.LOGIN, "alice")
