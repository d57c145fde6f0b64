"""TLS to the directory: ldaps:// and StartTLS, verified against the CA and the expected names."""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.directory import BindResult, Directory, NameKind
from gateway.errors import UpstreamUnavailable
from tests.gateway.directory.conftest import ldap_source
from tests.reactor import blocking
from tests.servers.slapd import Slapd
from tests.servers.tls import make_tls_files


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the server's certificate."""
    return make_tls_files(tmp_path_factory.mktemp("other-ca")).ca_file


def ldaps(server: Slapd, **overrides: object) -> dict[str, object]:
    return {"urls": [server.ldaps_url], "ca_file": str(server.ca_file), **overrides}


def start_tls(server: Slapd, **overrides: object) -> dict[str, object]:
    return {"urls": [server.url], "start_tls": True, "ca_file": str(server.ca_file), **overrides}


def directory_for(connect: Callable[..., Directory], settings: dict[str, object]) -> Directory:
    urls = settings.pop("urls")
    assert isinstance(urls, list)
    return connect(ldap_source(urls, **settings))


@pytest.mark.parametrize("mode", [ldaps, start_tls])
def test_verified_tls_works(
    slapd_tls: Slapd, connect: Callable[..., Directory], mode: Callable[..., dict[str, object]]
) -> None:
    directory = directory_for(connect, mode(slapd_tls))
    alice = slapd_tls.users["alice"]

    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    assert blocking(directory.verify, alice.dn, "wrong") is BindResult.INVALID_CREDENTIALS


@pytest.mark.parametrize("mode", [ldaps, start_tls])
def test_a_configured_name_replaces_the_url_host(
    slapd_tls: Slapd, connect: Callable[..., Directory], mode: Callable[..., dict[str, object]]
) -> None:
    # The URL says 127.0.0.1; the certificate also names localhost.
    directory = directory_for(connect, mode(slapd_tls, tls_server_names=["localhost"]))

    assert directory.find_user(NameKind.LOGIN, "alice") is not None


@pytest.mark.parametrize("mode", [ldaps, start_tls])
def test_a_wrong_ca_is_a_tls_error(
    slapd_tls: Slapd,
    connect: Callable[..., Directory],
    mode: Callable[..., dict[str, object]],
    other_ca: Path,
) -> None:
    directory = directory_for(connect, mode(slapd_tls, ca_file=str(other_ca)))

    with pytest.raises(UpstreamUnavailable, match="TLS certificate not trusted"):
        directory.find_user(NameKind.LOGIN, "alice")
    with pytest.raises(UpstreamUnavailable, match="TLS"):
        blocking(directory.verify, slapd_tls.users["alice"].dn, "alice-secret")


@pytest.mark.parametrize("mode", [ldaps, start_tls])
def test_a_wrong_expected_name_is_a_tls_error(
    slapd_tls: Slapd, connect: Callable[..., Directory], mode: Callable[..., dict[str, object]]
) -> None:
    # The URL's host (127.0.0.1) is on the certificate, but the configured name is what counts.
    directory = directory_for(connect, mode(slapd_tls, tls_server_names=["ldap.example.org"]))

    with pytest.raises(UpstreamUnavailable, match="TLS certificate names another host"):
        directory.find_user(NameKind.LOGIN, "alice")


def test_start_tls_to_a_server_without_tls(
    slapd: Slapd, connect: Callable[..., Directory], other_ca: Path
) -> None:
    directory = connect(ldap_source([slapd.url], start_tls=True, ca_file=str(other_ca)))

    with pytest.raises(UpstreamUnavailable, match="TLS negotiation failed"):
        directory.find_user(NameKind.LOGIN, "alice")


def test_a_tls_failure_is_logged_once_per_server(
    slapd_tls: Slapd,
    connect: Callable[..., Directory],
    other_ca: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = directory_for(connect, ldaps(slapd_tls, ca_file=str(other_ca)))

    with caplog.at_level(logging.WARNING, logger="gateway.directory"):
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                directory.find_user(NameKind.LOGIN, "alice")

    tls_records = [r for r in caplog.records if "TLS" in r.getMessage()]
    assert len(tls_records) == 1
    assert slapd_tls.ldaps_url in tls_records[0].getMessage()


def test_a_tls_failure_fails_over(
    slapd_tls: Slapd,
    slapd_factory: Callable[..., Slapd],
    connect: Callable[..., Directory],
    tmp_path: Path,
) -> None:
    # The first server's certificate comes from a CA the source does not trust.
    untrusted = slapd_factory(tls=True, tls_files=make_tls_files(tmp_path))
    directory = connect(
        ldap_source([untrusted.ldaps_url, slapd_tls.ldaps_url], ca_file=str(slapd_tls.ca_file))
    )
    accepted = untrusted.count_connections()

    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert untrusted.count_connections() == accepted + 1
