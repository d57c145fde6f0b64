"""The bind check on the reactor (`ReactorBinds`): the pool, deadlines, the retry, the close."""

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from gateway.directory import BindResult, Directory
from gateway.directory import reactor_binds as module
from gateway.directory.reactor_binds import Refusal, prepare_bind
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from tests.gateway.directory.conftest import PEOPLE, ldap_source
from tests.reactor import blocking, running_reactor
from tests.servers.slapd import Slapd
from tests.servers.tls import make_tls_files

ROOTS = (PEOPLE,)
ALICE = f"uid=alice,{PEOPLE}"


@pytest.mark.parametrize(
    ("dn", "password", "expected"),
    [
        (ALICE, "secret", b"secret"),
        (ALICE, "Grüße", "Grüße".encode()),
        (ALICE, "a\u00adb", b"ab"),  # soft hyphen: mapped to nothing (RFC 4013 §2.2)
        ("", "secret", Refusal.EMPTY),
        (ALICE, "", Refusal.EMPTY),
        (ALICE, "\u00ad", Refusal.UNPREPARABLE),  # prepared empty: an unauthenticated bind
        (ALICE, "a\x07b", Refusal.UNPREPARABLE),  # a control character is prohibited
        ("cn=admin,dc=example,dc=org", "secret", Refusal.OUTSIDE_ROOTS),
        ("not a dn", "secret", Refusal.OUTSIDE_ROOTS),
    ],
)
def test_prepare_bind(dn: str, password: str, expected: bytes | Refusal) -> None:
    assert prepare_bind(dn, password, ROOTS) == expected


def verify_all(directory: Directory, calls: list[tuple[str, str]]) -> "defer.Deferred[Any]":
    """Start every check in one reactor turn; fires with [(seconds, result or exception)]."""
    began = time.monotonic()

    def done(outcome: Any) -> tuple[float, Any]:
        value = outcome.value if isinstance(outcome, Failure) else outcome
        return time.monotonic() - began, value

    started = [directory.verify(dn, password).addBoth(done) for dn, password in calls]
    return defer.gatherResults(started)


def test_the_pool_never_exceeds_pool_size(
    slapd: Slapd, connect: Callable[..., Directory], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = connect(ldap_source([slapd.url], pool_size=3))
    alice = slapd.users["alice"]
    in_flight: dict[int, int] = {}
    most: list[int] = []
    bind = module._Link.bind

    def counting(link: Any, *args: Any) -> Any:
        in_flight[id(link)] = in_flight.get(id(link), 0) + 1
        most.append(in_flight[id(link)])

        def answered(result: Any) -> Any:
            in_flight[id(link)] -= 1
            return result

        return bind(link, *args).addBoth(answered)

    monkeypatch.setattr(module._Link, "bind", counting)
    connections = slapd.count_connections()

    calls = [(alice.dn, alice.password if i % 2 else "wrong") for i in range(50)]
    results = blocking(verify_all, directory, calls)

    assert [value for _, value in results] == [
        BindResult.OK if i % 2 else BindResult.INVALID_CREDENTIALS for i in range(50)
    ]
    assert max(most) == 1  # one bind in flight per connection (RFC 4511 §4.2.1)
    assert len(in_flight) <= 3
    assert slapd.count_connections() - connections <= 3


@pytest.fixture
def unanswering() -> Iterator[str]:
    """A server that accepts TCP connections (the kernel's backlog) and never reads a byte."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"ldap://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_server_that_never_answers_fails_every_check_in_time(
    unanswering: str, slapd: Slapd, connect: Callable[..., Directory]
) -> None:
    hung = connect(ldap_source([unanswering], operation_timeout_seconds=1))
    fine = connect(ldap_source([slapd.url]))
    alice = slapd.users["alice"]

    def both() -> "defer.Deferred[Any]":
        return defer.gatherResults(
            [
                verify_all(hung, [(alice.dn, alice.password)] * 200),
                verify_all(fine, [(alice.dn, alice.password)] * 20),
            ]
        )

    stuck, served = blocking(both)

    assert all(isinstance(value, UpstreamTimeout) for _, value in stuck), stuck[:3]
    assert max(seconds for seconds, _ in stuck) < 1.8
    assert min(seconds for seconds, _ in stuck) > 0.9
    assert all(value is BindResult.OK for _, value in served)
    assert max(seconds for seconds, _ in served) < 0.8


def test_a_bind_that_is_never_answered_drops_its_connection(
    unanswering: str, connect: Callable[..., Directory], caplog: pytest.LogCaptureFixture
) -> None:
    directory = connect(ldap_source([unanswering], operation_timeout_seconds=0.3))

    with pytest.raises(UpstreamTimeout, match=unanswering.replace(".", r"\.")):
        blocking(directory.verify, ALICE, "alice-secret")

    # The connection's own deadline runs out just after the caller's: dropped, cooling down.
    def settled() -> "defer.Deferred[Any]":
        return deferLater(running_reactor(), 0.2, lambda: None)

    blocking(settled)
    binds = directory._reactor_binds
    assert binds is not None
    assert not binds._links and not binds._idle
    assert "no answer in time" in caplog.text


def pooled_link(directory: Directory) -> Any:
    binds = directory._reactor_binds
    assert binds is not None and len(binds._idle) == 1
    return binds._idle[0]


def test_a_dropped_pooled_connection_is_retried_once(
    slapd: Slapd, connect: Callable[..., Directory], caplog: pytest.LogCaptureFixture
) -> None:
    directory = connect(ldap_source([slapd.url]))
    alice = slapd.users["alice"]
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    connections = slapd.count_connections()

    def drop_then_verify() -> "defer.Deferred[BindResult]":
        # The socket goes away under the reactor's feet: the pooled connection still looks
        # usable when the bind is sent on it, as after a server's silent restart.
        pooled_link(directory).transport.getHandle().shutdown(socket.SHUT_RDWR)
        return directory.verify(alice.dn, alice.password)

    with caplog.at_level(logging.INFO, logger="gateway.directory"):
        assert blocking(drop_then_verify) is BindResult.OK

    assert "dropped a pooled connection; reconnecting" in caplog.text
    assert slapd.count_connections() == connections + 1


def test_a_restarted_server_is_reconnected(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    alice = server.users["alice"]
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK

    server.kill()
    server.start()

    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    assert blocking(directory.verify, alice.dn, "wrong") is BindResult.INVALID_CREDENTIALS


def test_the_password_is_never_logged(
    slapd: Slapd,
    unanswering: str,
    connect: Callable[..., Directory],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = slapd.users["alice"]
    secret = "Never-Logged-0123"
    directory = connect(ldap_source([slapd.url]))
    hung = connect(ldap_source([unanswering], operation_timeout_seconds=0.2))

    with caplog.at_level(logging.DEBUG):
        assert blocking(directory.verify, alice.dn, secret) is BindResult.INVALID_CREDENTIALS
        assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
        with pytest.raises(UpstreamTimeout) as raised:
            blocking(hung.verify, alice.dn, secret)

    assert secret not in caplog.text and alice.password not in caplog.text
    assert secret not in str(raised.value) and secret not in repr(directory._reactor_binds)


def test_the_checks_are_observed(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    seen: list[tuple[str, str, bool]] = []
    directory = connect(
        ldap_source([slapd.url]),
        observe=lambda source, kind, seconds, failed: seen.append((source, kind, failed)),
    )
    alice = slapd.users["alice"]

    blocking(directory.verify, alice.dn, alice.password)
    blocking(directory.verify, alice.dn, "")  # refused before any traffic: not an upstream call

    assert seen == [("corp", "bind", False)]


def test_close(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url]))
    alice = slapd.users["alice"]
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    link = pooled_link(directory)

    blocking(directory.close)

    assert not link.connected
    with pytest.raises(UpstreamUnavailable, match="closed"):
        blocking(directory.verify, alice.dn, alice.password)


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_tls_failures_of_the_bind_path(
    slapd_tls: Slapd, connect: Callable[..., Directory], tmp_path: Path, start_tls: bool
) -> None:
    url = slapd_tls.url if start_tls else slapd_tls.ldaps_url
    alice = slapd_tls.users["alice"]
    settings = {"start_tls": start_tls, "ca_file": str(slapd_tls.ca_file)}
    other_ca = str(make_tls_files(tmp_path).ca_file)
    untrusted = connect(ldap_source([url], **{**settings, "ca_file": other_ca}))
    misnamed = connect(ldap_source([url], **settings, tls_server_names=["ldap.example.org"]))
    renamed = connect(ldap_source([url], **settings, tls_server_names=["localhost"]))

    with pytest.raises(UpstreamUnavailable, match="TLS certificate not trusted"):
        blocking(untrusted.verify, alice.dn, alice.password)
    with pytest.raises(UpstreamUnavailable, match="TLS certificate names another host"):
        blocking(misnamed.verify, alice.dn, alice.password)
    assert blocking(renamed.verify, alice.dn, alice.password) is BindResult.OK


def test_start_tls_refused_by_the_server(
    slapd: Slapd, connect: Callable[..., Directory], tmp_path: Path
) -> None:
    ca_file = str(make_tls_files(tmp_path).ca_file)
    directory = connect(ldap_source([slapd.url], start_tls=True, ca_file=ca_file))

    with pytest.raises(UpstreamUnavailable, match="TLS negotiation failed"):
        blocking(directory.verify, slapd.users["alice"].dn, "alice-secret")
