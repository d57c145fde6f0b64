"""Servers tried in order, failover, the way back, dropped connections, timeouts."""

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from gateway.directory import BindResult, Directory, NameKind
from gateway.directory import directory as directory_module
from gateway.directory.connect import Connector
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tests.gateway.directory.conftest import SERVICE_PASSWORD, ldap_source
from tests.ldapproxy.gateway_process import refusing_port
from tests.reactor import blocking
from tests.servers.slapd import Slapd


class SilentServer:
    """Accepts TCP connections and never says a word: a hung directory."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def searches_for(server: Slapd, marker: str) -> int:
    return server.count_operations("SRCH", contains=marker)


def test_the_second_server_serves_when_the_first_is_down(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    first, second = slapd_factory(), slapd_factory()
    first.stop()
    directory = connect(ldap_source([first.url, second.url]))
    alice = second.users["alice"]

    entry = directory.find_user(NameKind.LOGIN, "alice")

    assert entry is not None and entry.dn == alice.dn
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    assert directory.read_user(entry.external_id) == entry


def test_a_refused_port_moves_on(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    with refusing_port() as closed:  # refuses connections, and nobody else can take it
        directory = connect(ldap_source([f"ldap://127.0.0.1:{closed}", slapd.url]))

        assert directory.find_user(NameKind.LOGIN, "alice") is not None


def test_none_reachable(
    slapd_factory: Callable[..., Slapd],
    connect: Callable[..., Directory],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = slapd_factory(seed_users=False), slapd_factory(seed_users=False)
    first.stop()
    second.stop()
    directory = connect(ldap_source([first.url, second.url]))

    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamUnavailable) as raised:
        directory.find_user(NameKind.LOGIN, "alice")

    message = str(raised.value)
    assert "no directory server reachable for source corp" in message
    assert first.url in message and second.url in message
    assert SERVICE_PASSWORD not in message and SERVICE_PASSWORD not in caplog.text
    with pytest.raises(UpstreamUnavailable):
        blocking(directory.verify, f"uid=x,{first.people_dn}", "pw")


class MonotonicClock:
    """A `time.monotonic` stand-in the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_failover_is_not_sticky(
    slapd_factory: Callable[..., Slapd],
    connect: Callable[..., Directory],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = slapd_factory(), slapd_factory()
    first.stop()
    # The cool-down runs on a clock of the test's, so "within" and "after" it do not depend
    # on how fast this machine restarts a server. Directory builds its Connector itself; the
    # Connector takes the clock.
    clock = MonotonicClock()
    monkeypatch.setattr(
        directory_module,
        "Connector",
        lambda source, cooldown: Connector(source, cooldown, clock=clock),
    )
    directory = connect(ldap_source([first.url, second.url]), failover_cooldown_seconds=0.5)
    before = f"b-{uuid.uuid4().hex[:8]}"
    directory.find_user(NameKind.LOGIN, before)
    assert searches_for(second, before) == 1

    first.start()
    # Within the cool-down the pooled connection to the second server is kept.
    during = f"d-{uuid.uuid4().hex[:8]}"
    directory.find_user(NameKind.LOGIN, during)
    assert searches_for(second, during) == 1
    clock.advance(0.6)
    after = f"a-{uuid.uuid4().hex[:8]}"
    directory.find_user(NameKind.LOGIN, after)

    assert searches_for(first, after) == 1
    assert searches_for(second, after) == 0


def test_a_restarted_server_is_reconnected_transparently(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    directory = connect(ldap_source([server.url]))
    alice = server.users["alice"]
    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK

    server.stop()
    server.start()

    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK


def test_a_killed_server_fails_over_mid_session(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    first, second = slapd_factory(), slapd_factory()
    directory = connect(ldap_source([first.url, second.url]))
    assert directory.find_user(NameKind.LOGIN, "alice") is not None

    first.kill()

    marker = f"k-{uuid.uuid4().hex[:8]}"
    assert directory.find_user(NameKind.LOGIN, marker) is None
    assert searches_for(second, marker) == 1


def test_a_silent_server_times_out(silent: SilentServer, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([silent.url], operation_timeout_seconds=1))

    began = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=silent.url.replace(".", r"\.")):
        directory.find_user(NameKind.LOGIN, "alice")
    elapsed = time.monotonic() - began

    assert 0.9 < elapsed < 2.5
    assert silent.accepted


def test_a_silent_bind_times_out(silent: SilentServer, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([silent.url], operation_timeout_seconds=0.5))

    began = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        blocking(directory.verify, "uid=alice,ou=people,dc=example,dc=org", "alice-secret")
    assert 0.4 < time.monotonic() - began < 2.0


def test_a_silent_first_server_fails_over(
    silent: SilentServer, slapd: Slapd, connect: Callable[..., Directory]
) -> None:
    directory = connect(ldap_source([silent.url, slapd.url], operation_timeout_seconds=0.5))

    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    # Cooling down: the next connection goes straight to the second server.
    began = time.monotonic()
    alice = slapd.users["alice"]
    assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
    assert time.monotonic() - began < 0.4


def test_an_unroutable_server_times_out_on_connect(
    slapd: Slapd, connect: Callable[..., Directory]
) -> None:
    # 192.0.2.0/24 (TEST-NET-1, RFC 5737) is never routed: the connect hangs or fails fast.
    directory = connect(ldap_source(["ldap://192.0.2.1", slapd.url], connect_timeout_seconds=0.3))

    began = time.monotonic()
    assert directory.find_user(NameKind.LOGIN, "alice") is not None
    assert time.monotonic() - began < 2.0


def test_wrong_service_password_is_an_error_not_a_failover(
    slapd: Slapd, connect: Callable[..., Directory], caplog: pytest.LogCaptureFixture
) -> None:
    directory = connect(ldap_source([slapd.url, slapd.url], bind_password="not-the-password"))

    with pytest.raises(UpstreamError) as raised:
        directory.find_user(NameKind.LOGIN, "alice")

    assert type(raised.value) is UpstreamError
    assert "service account" in str(raised.value)
    assert "not-the-password" not in str(raised.value) + caplog.text


def test_closed_directory(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url]))
    assert directory.find_user(NameKind.LOGIN, "alice") is not None

    directory.close()

    with pytest.raises(UpstreamUnavailable, match="closed"):
        directory.find_user(NameKind.LOGIN, "alice")


def test_concurrent_lookups_and_binds(slapd: Slapd, connect: Callable[..., Directory]) -> None:
    directory = connect(ldap_source([slapd.url], pool_size=3))
    alice = slapd.users["alice"]
    errors: list[BaseException] = []
    connections = slapd.count_connections()

    def work() -> None:
        try:
            for _ in range(20):
                assert directory.find_user(NameKind.LOGIN, "alice") is not None
                assert blocking(directory.verify, alice.dn, alice.password) is BindResult.OK
                assert blocking(directory.verify, alice.dn, "x") is BindResult.INVALID_CREDENTIALS
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # At most pool_size service and pool_size bind connections.
    assert slapd.count_connections() - connections <= 6
