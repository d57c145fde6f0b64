"""Opening connections to a source's servers: failover, TLS, timeouts, the service bind.

`Connector.open` walks `ServerList.candidates()`: a server that cannot be reached, does not
answer within the operation timeout, or fails TLS starts its cool-down and the next is tried.
When none is left it raises UpstreamTimeout if a server accepted the connection but did not
answer in time, else UpstreamUnavailable; either message names every URL tried and why, and
says "TLS" for certificate failures. A service account that the directory refuses is not a
reason to try the next server (it would be refused there too): that raises UpstreamError.

Every connection is ldap3's synchronous strategy, read-only, without referral chasing
(SPEC §2), with AD's ranged attributes fetched in full (auto_range), and without ldap3's
schema reading (get_info=NONE): nothing is read that the gateway does not ask for.
"""

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ldap3

from gateway.config import AdSource, LdapSource
from gateway.directory.errors import LIBRARY_ERRORS, Failure, classify
from gateway.directory.servers import ServerAddress, ServerList
from gateway.directory.tls import VerifyingTls, client_context
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["Connector", "Link", "close_quietly", "no_server_left"]

log = logging.getLogger(__name__)

_BUSY, _UNAVAILABLE = 51, 52


@dataclass
class Link:
    """An open ldap3 connection, and which server it reached."""

    connection: Any
    server: int
    url: str
    opened_at: float


class _ServerRefused(Exception):
    """The server answered the service bind with busy/unavailable: try the next one."""


_OPEN_ERRORS: tuple[type[Exception], ...] = (_ServerRefused, *LIBRARY_ERRORS)


class Connector:
    """Opens connections to one directory source; thread-safe."""

    def __init__(
        self,
        source: LdapSource | AdSource,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.servers = ServerList(
            tuple(ServerAddress.parse(url) for url in source.urls), cooldown_seconds, clock
        )
        self._clock = clock
        self._context = client_context(source.ca_file) if source.uses_tls else None
        self._tls_reported: set[int] = set()
        self._lock = threading.Lock()

    def open(self, *, service: bool) -> Link:
        """Connect to the first server that answers.

        Args:
            service: bind as the source's service account; otherwise the connection stays
                anonymous (it is used for user binds).

        Raises:
            UpstreamUnavailable: no server could be reached (message: URLs tried and why).
            UpstreamTimeout: none answered, and at least one accepted but stayed silent.
            UpstreamError: the directory refused the service account.
        """
        tried: list[tuple[str, Failure]] = []
        last: Exception | None = None
        for index in self.servers.candidates():
            address = self.servers.addresses[index]
            try:
                connection = self._open_one(address, service=service)
            except _OPEN_ERRORS as exc:
                failure = Failure.UNREACHABLE if isinstance(exc, _ServerRefused) else classify(exc)
                self.failed(index, failure)
                tried.append((address.url, failure))
                last = exc
                continue
            self.answered(index)
            return Link(connection, index, address.url, self._clock())
        raise no_server_left(self.source, tried) from last

    def _open_one(self, address: ServerAddress, *, service: bool) -> Any:
        source = self.source
        server = ldap3.Server(
            address.host,
            port=address.port,
            use_ssl=address.use_ssl,
            tls=self._tls(address),
            get_info=ldap3.NONE,
            connect_timeout=source.connect_timeout_seconds,
        )
        connection = ldap3.Connection(
            server,
            client_strategy=ldap3.SYNC,
            auto_referrals=False,
            auto_range=True,
            read_only=True,
            raise_exceptions=False,
            check_names=False,
            return_empty_attributes=False,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds; the exact (fractional)
            # timeout is set on the socket once it is open.
            receive_timeout=max(1, math.ceil(source.operation_timeout_seconds)),
        )
        try:
            connection.open(read_server_info=False)
            connection.socket.settimeout(source.operation_timeout_seconds)
            if source.start_tls:
                connection.start_tls(read_server_info=False)
            if service:
                self._bind_service(connection, address)
        except BaseException:
            close_quietly(connection)
            raise
        return connection

    def _bind_service(self, connection: Any, address: ServerAddress) -> None:
        connection.user = self.source.bind_dn
        connection.authentication = ldap3.SIMPLE
        # The one place the service password is read; ldap3 keeps no copy after the bind.
        connection.password = self.source.bind_password.get_secret_value()
        try:
            connection.bind(read_server_info=False)
        finally:
            connection.password = None
        code = connection.result["result"]
        if code == 0:
            return
        if code in (_BUSY, _UNAVAILABLE):
            raise _ServerRefused
        log.error(
            "source %s: %s refused the service account bind (%s)",
            self.source.id,
            address.url,
            connection.result["description"],
        )
        raise UpstreamError(
            f"source {self.source.id}: {address.url} refused the service account bind"
            f" ({connection.result['description']})"
        )

    def _tls(self, address: ServerAddress) -> VerifyingTls | None:
        if self._context is None:
            return None
        names = self.source.tls_server_names or (address.host,)
        return VerifyingTls(self._context, names)

    def failed(self, index: int, failure: Failure) -> None:
        """A server failed (here, or during an operation): start its cool-down, log once."""
        url = self.servers.addresses[index].url
        newly = self.servers.mark_down(index)
        if failure.is_tls:
            with self._lock:
                first = index not in self._tls_reported
                self._tls_reported.add(index)
            if first:
                log.error("source %s: %s: %s", self.source.id, url, failure.value)
            return
        if newly:
            log.warning("source %s: %s failed (%s)", self.source.id, url, failure.value)

    def answered(self, index: int) -> None:
        """A server answered (here, or on another client's connection): end its cool-down."""
        with self._lock:
            self._tls_reported.discard(index)
        if self.servers.mark_up(index):
            log.info(
                "source %s: %s answers again", self.source.id, self.servers.addresses[index].url
            )


def no_server_left(
    source: LdapSource | AdSource, tried: list[tuple[str, Failure]]
) -> UpstreamError:
    """The error when no server of `source` could be connected: UpstreamTimeout if one
    accepted but stayed silent, else UpstreamUnavailable; it names every URL tried and why."""
    summary = ", ".join(f"{url} ({failure.value})" for url, failure in tried)
    if any(failure is Failure.NO_ANSWER for _, failure in tried):
        return UpstreamTimeout(
            f"no directory server answered within {source.operation_timeout_seconds:g} s"
            f" for source {source.id}; tried {summary}"
        )
    return UpstreamUnavailable(
        f"no directory server reachable for source {source.id}; tried {summary}"
    )


def close_quietly(connection: Any) -> None:
    """Unbind if possible and always release the socket: ldap3 2.9.1 leaves it open after a
    failed connect or StartTLS."""
    with contextlib.suppress(*LIBRARY_ERRORS):
        connection.unbind()
    sock = connection.socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
        connection.socket = None
