"""The user's password check on the reactor: ldaptor's LDAP codec over Twisted (SPEC §2, §6).

`ReactorBinds.verify` is the one path of the bind check; it never blocks. The wire layer is
ldaptor's `pureldap` (requests encoded, answers decoded) under a small protocol of ours rather
than ldaptor's `LDAPClient`, which imports the global reactor, numbers messages from one
process-wide counter, drops response controls unless asked, has no deadlines and asserts on
a malformed answer (bench/README.md, "Upstream client for the bind path").

    verify(dn, password)
    ├── refused before any traffic (`prepare_bind`)  → INVALID_CREDENTIALS
    ├── a slot of the pool (≤ pool_size connections, FIFO waiters)
    ├── an idle connection, or a new one: servers in `ServerList` order, TLS verified
    ├── one simple bind on it (RFC 4511 §4.2.1: one bind in flight per connection)
    └── the answer → `classify_bind`; once more on a fresh connection if a pooled one dropped

Deadlines: a call fails with UpstreamTimeout ``operation_timeout_seconds`` after it began,
whatever it was waiting for (a slot, a connection, the answer). Work under way goes on: a
connection that was opening joins the pool, a bind already sent keeps its connection until
it is answered or has waited ``operation_timeout_seconds`` itself; then its connection is
dropped (its state is unknown) and the server cools down. Opening a connection gives each
server ``connect_timeout_seconds`` to accept and ``operation_timeout_seconds`` for StartTLS
and the TLS handshake. Errors are `gateway.errors` only, with the messages of `connect`
and `errors.upstream_error`; the password is never logged, repr'd or kept after the bind.
"""

import contextlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from ldap3.core.exceptions import LDAPSASLPrepError
from ldap3.protocol.sasl.sasl import sasl_prep
from ldaptor.protocols import pureber, pureldap
from OpenSSL import SSL
from twisted.internet import defer, endpoints, error, protocol
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure as TwistedFailure
from zope.interface import implementer  # type: ignore[import-untyped]

from gateway.config import AdSource, LdapSource
from gateway.directory.binding import classify_bind
from gateway.directory.connect import Connector, no_server_left
from gateway.directory.dn import is_within
from gateway.directory.errors import Failure, upstream_error
from gateway.directory.outcomes import BindResult
from gateway.directory.ppolicy import PPOLICY_OID
from gateway.directory.servers import ServerAddress
from gateway.directory.tls import certificate_matches, is_address
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["MAX_IDLE_SECONDS", "ReactorBinds", "Refusal", "prepare_bind"]

log = logging.getLogger(__name__)

#: Idle pooled connections older than this are replaced rather than reused (as `Directory`).
MAX_IDLE_SECONDS = 300.0
#: (source id, "bind", seconds, failed), as `Directory`'s observer.
Observer = Callable[[str, str, float, bool], None]

_SUCCESS = 0
#: RFC 4511 §4.1.1: message IDs are 1 .. 2**31 - 1; 0 is the server's unsolicited notification.
_MAX_MESSAGE_ID = 2**31 - 1
_PPOLICY = PPOLICY_OID.encode()
_DECODER = pureldap.LDAPBERDecoderContext_TopLevel(
    inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
        fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
        inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
    )
)


class Refusal(Enum):
    """Why a password check ends before any traffic (INVALID_CREDENTIALS)."""

    #: An empty DN or password: an unauthenticated bind (RFC 4513 §5.1.2) would succeed.
    EMPTY = "empty"
    #: SASLprep (RFC 4013, as RFC 4513 §5.1.1 asks) refuses the password or maps it to nothing.
    UNPREPARABLE = "unpreparable"
    #: The DN lies outside the source's roots.
    OUTSIDE_ROOTS = "outside the roots"


def prepare_bind(dn: str, password: str, roots: tuple[str, ...]) -> bytes | Refusal:
    """The octets to send as the simple bind's password, or why nothing is sent (pure)."""
    if not dn or not password:
        return Refusal.EMPTY
    try:
        prepared = str(sasl_prep(password)).encode("utf-8")
    except (LDAPSASLPrepError, UnicodeError):
        return Refusal.UNPREPARABLE
    if not prepared:
        return Refusal.UNPREPARABLE
    if not is_within(dn, roots):
        return Refusal.OUTSIDE_ROOTS
    return prepared


class ReactorBinds:
    """Simple binds as users of one source, on the reactor; use it from the reactor thread."""

    def __init__(
        self,
        source: LdapSource | AdSource,
        connector: Connector,
        reactor: Any,
        *,
        observe: Observer | None = None,
    ) -> None:
        """
        Args:
            source: the source's configuration.
            connector: the source's `Connector`: its servers' order and cool-downs are shared
                with the ldap3 connections of the same `Directory`.
            reactor: the reactor to run on (connections, deadlines).
            observe: told of every check that reached the pool: (source id, "bind",
                seconds, failed).

        No connection is opened until the first check.
        """
        self._source = source
        self._connector = connector
        self._servers = connector.servers
        #: The reactor this runs on.
        self.reactor = reactor
        self._observe = observe
        self._kind: Literal["ldap", "ad"] = "ad" if isinstance(source, AdSource) else "ldap"
        self._controls = [(_PPOLICY, False, None)] if self._kind == "ldap" else None
        self._timeout = float(source.operation_timeout_seconds)
        self._size = source.pool_size
        self._free = source.pool_size
        self._waiters: deque[defer.Deferred[None]] = deque()
        #: Connections at rest, most recently used last.
        self._idle: list[_Link] = []
        #: Every open connection, at rest or not.
        self._links: set[_Link] = set()
        self._context = _client_context(source.ca_file) if source.uses_tls else None
        self._closed = False

    # -- the check ---------------------------------------------------------------------------

    def verify(self, dn: str, password: str) -> "defer.Deferred[BindResult]":
        """Check a user's password with a simple bind as `dn` on a connection that is never
        the service account's (SPEC §2, §6). Refusals of `prepare_bind` send nothing.
        OpenLDAP's password policy control (requested on ``ldap`` sources) and AD's ``data``
        code are decoded by `classify_bind`; the directory's message is never passed on.

        Returns:
            A Deferred firing with the `BindResult`; only OK authenticates. It fails with:
            UpstreamUnavailable: no server could be reached, it was busy, or this is closed;
            UpstreamTimeout: no answer within operation_timeout_seconds (a slot, a
                connection or the bind's answer), or none of the servers answered;
            UpstreamError: an answer that says nothing about the user.
        """
        if self._closed:
            return defer.fail(self._closed_error())
        prepared = prepare_bind(dn, password, self._source.roots)
        if isinstance(prepared, Refusal):
            if prepared is Refusal.OUTSIDE_ROOTS:
                log.warning(
                    "source %s: refused to bind as %s: outside the roots", self._source.id, dn
                )
            return defer.succeed(BindResult.INVALID_CREDENTIALS)
        call = _Call(dn, prepared, defer.Deferred(), time.monotonic())
        call.timer = self.reactor.callLater(self._timeout, self._expired, call)
        self._attempt(call, retry=False)
        return call.result

    def _attempt(self, call: "_Call", *, retry: bool) -> None:
        if self._free > 0:
            self._free -= 1
            self._with_slot(call, retry)
            return
        waiter: defer.Deferred[None] = defer.Deferred()
        waiter.addCallback(lambda _: self._with_slot(call, retry))
        call.waiter = waiter
        self._waiters.append(waiter)

    def _with_slot(self, call: "_Call", retry: bool) -> None:
        call.waiter = None
        if self._closed:
            self._release_slot()
            self._finish(call, self._closed_error())
            return
        link = None if retry else self._idle_link()
        if link is not None:
            self._send(call, link)
            return
        if retry and len(self._links) >= self._size and self._idle:
            # Keep within pool_size: after a drop, the oldest idle one is likely dead too.
            self._drop(self._idle.pop(0), abort=True)
        opened = self._open()
        opened.addCallbacks(
            self._opened, self._open_failed, callbackArgs=(call,), errbackArgs=(call,)
        )

    def _opened(self, link: "_Link", call: "_Call") -> None:
        if call.done:
            self._rest(link)  # the caller's deadline passed while this one was opening
            self._release_slot()
            return
        self._send(call, link)

    def _open_failed(self, failure: TwistedFailure, call: "_Call") -> None:
        self._release_slot()
        self._finish(call, failure)

    def _send(self, call: "_Call", link: "_Link") -> None:
        call.link = link
        sent = link.bind(call.dn, call.prepared, self._controls, self._timeout)
        call.prepared = b""  # not kept beyond the request on the wire
        sent.addCallbacks(
            self._answered, self._bind_failed, callbackArgs=(call, link), errbackArgs=(call, link)
        )

    def _answered(
        self, answer: tuple[int, str, bytes | None], call: "_Call", link: "_Link"
    ) -> None:
        self._rest(link)
        self._release_slot()
        code, message, ppolicy = answer
        try:
            outcome = classify_bind(self._kind, code, message, ppolicy)
        except UpstreamError as exc:
            self._finish(call, exc)
            return
        log.debug("source %s: bind as %s: %s", self._source.id, call.dn, outcome.value)
        self._finish(call, outcome)

    def _bind_failed(self, failure: TwistedFailure, call: "_Call", link: "_Link") -> None:
        self._drop(link, abort=True)
        self._release_slot()
        category = _category(failure)
        if category is Failure.DROPPED and link.reused and not call.retried and not call.done:
            log.info(
                "source %s: %s dropped a pooled connection; reconnecting",
                self._source.id,
                link.url,
            )
            call.retried = True
            call.prepared = call.prepared_again
            self._attempt(call, retry=True)
            return
        if category in (Failure.NO_ANSWER, Failure.DROPPED):
            self._connector.failed(link.server, category)
        self._finish(call, upstream_error(category, self._source.id, link.url, "bind"))

    def _expired(self, call: "_Call") -> None:
        call.timer = None
        if call.done:
            return
        if call.waiter is not None:
            with contextlib.suppress(ValueError):
                self._waiters.remove(call.waiter)
            call.waiter = None
            message = (
                f"source {self._source.id} bind connections: all {self._size} connections busy"
            )
        elif call.link is not None:
            self._finish(
                call, upstream_error(Failure.NO_ANSWER, self._source.id, call.link.url, "bind")
            )
            return
        else:
            message = (
                f"no directory server answered within {self._timeout:g} s"
                f" for source {self._source.id} (connecting)"
            )
        self._finish(call, UpstreamTimeout(message))

    def _finish(self, call: "_Call", outcome: BindResult | Exception | TwistedFailure) -> None:
        if call.done:
            return
        call.done = True
        call.prepared = call.prepared_again = b""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        failed = not isinstance(outcome, BindResult)
        if self._observe is not None:
            self._observe(self._source.id, "bind", time.monotonic() - call.started, failed)
        if isinstance(outcome, BindResult):
            call.result.callback(outcome)
        else:
            call.result.errback(outcome)

    # -- the pool ----------------------------------------------------------------------------

    def _release_slot(self) -> None:
        if self._waiters:
            self._waiters.popleft().callback(None)  # the slot passes to the first waiter
        else:
            self._free += 1

    def _idle_link(self) -> "_Link | None":
        now = self.reactor.seconds()
        while self._idle:
            link = self._idle.pop()
            if (
                link.connected
                and now - link.idle_since <= MAX_IDLE_SECONDS
                and not self._servers.better_than(link.server)
            ):
                link.reused = True
                return link
            self._drop(link, abort=False)
        return None

    def _rest(self, link: "_Link") -> None:
        if self._closed or not link.connected:
            self._drop(link, abort=not link.connected)
            return
        link.idle_since = self.reactor.seconds()
        self._idle.append(link)

    def _drop(self, link: "_Link", *, abort: bool) -> None:
        self._links.discard(link)
        if abort:
            link.abort()
        else:
            link.close()

    def close(self) -> "defer.Deferred[None]":
        """Close the connections at rest (the others when their bind ends); later checks and
        those waiting for a connection fail with UpstreamUnavailable.

        Returns:
            A Deferred that fires once the connections at rest are closed.
        """
        self._closed = True
        idle, self._idle = self._idle, []
        for link in idle:
            self._drop(link, abort=False)
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.callback(None)  # `_with_slot` sees the pool closed
        done = defer.DeferredList([link.lost for link in idle], consumeErrors=True)
        return done.addCallback(lambda _: None)

    def _closed_error(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"source {self._source.id}: the connector is closed")

    # -- opening connections -----------------------------------------------------------------

    def _open(self) -> "defer.Deferred[_Link]":
        """Connect to the first server that answers, as `Connector.open` does (same order,
        cool-downs and messages), without the service bind."""
        candidates = self._servers.candidates()
        tried: list[tuple[str, Failure]] = []
        opened: defer.Deferred[_Link] = defer.Deferred()

        def attempt(position: int) -> None:
            if position == len(candidates):
                opened.errback(no_server_left(self._source, tried))
                return
            index = candidates[position]
            address = self._servers.addresses[index]
            one = self._connect(index, address)

            def connected(link: _Link) -> None:
                self._connector.answered(index)
                self._links.add(link)
                opened.callback(link)

            def failed(failure: TwistedFailure) -> None:
                category = _category(failure, connecting=True)
                self._connector.failed(index, category)
                tried.append((address.url, category))
                attempt(position + 1)

            one.addCallbacks(connected, failed)

        attempt(0)
        return opened

    def _connect(self, index: int, address: ServerAddress) -> "defer.Deferred[_Link]":
        source = self._source
        endpoint: Any = endpoints.HostnameEndpoint(
            self.reactor, address.host, address.port, timeout=source.connect_timeout_seconds
        )
        creator = None
        if self._context is not None:
            names = source.tls_server_names or (address.host,)
            creator = _ClientTls(self._context, names)
            if address.use_ssl:
                endpoint = endpoints.wrapClientTLS(creator, endpoint)  # type: ignore[arg-type]
        link = _Link(self.reactor, index, address.url, creator)

        def unreachable(failure: TwistedFailure) -> TwistedFailure:
            if isinstance(failure.value, _Broken):
                return failure
            raise _Broken(Failure.UNREACHABLE)

        connected: defer.Deferred[Any] = endpoints.connectProtocol(endpoint, link)  # type: ignore[no-untyped-call]
        connected.addErrback(unreachable)
        return connected.addCallback(lambda _: link.setup(source.start_tls, self._timeout))


@dataclass(eq=False)
class _Call:
    """One `verify` in progress."""

    dn: str
    prepared: bytes
    result: "defer.Deferred[BindResult]"
    started: float
    #: The password again for the one retry (cleared once it is sent or the call ends).
    prepared_again: bytes = b""
    timer: Any = None
    waiter: "defer.Deferred[None] | None" = None
    link: "_Link | None" = None
    retried: bool = False
    done: bool = False

    def __post_init__(self) -> None:
        self.prepared_again = self.prepared

    def __repr__(self) -> str:  # never the password
        return f"_Call(dn={self.dn!r}, done={self.done})"


class _Broken(Exception):
    """A connection failed; `failure` says how (for the cool-down and the message)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.value)
        self.failure = failure


@implementer(IHandshakeListener)
class _Link(protocol.Protocol):
    """One connection for user binds: one request at a time, message IDs of its own."""

    def __init__(self, reactor: Any, server: int, url: str, tls: "_ClientTls | None") -> None:
        self.server = server
        self.url = url
        self.reused = False
        self.idle_since = 0.0
        self.connected = False
        #: Fires (never fails) once the connection is gone.
        self.lost: defer.Deferred[None] = defer.Deferred()
        self._reactor = reactor
        self._tls = tls
        self._buffer = b""
        self._last_id = 0
        self._pending: tuple[int, defer.Deferred[Any]] | None = None
        self._secured: defer.Deferred[None] | None = None
        self._deadline: Any = None

    def __repr__(self) -> str:
        return f"_Link({self.url}, connected={self.connected})"

    # -- setup: StartTLS, the handshake ------------------------------------------------------

    def setup(self, start_tls: bool, timeout: float) -> "defer.Deferred[_Link]":
        """After the TCP connect: StartTLS (RFC 4511 §4.14) and the TLS handshake, if any.

        Fails with _Broken: the handshake, the certificate, StartTLS, or no answer in time.
        """
        if self._tls is None:
            return defer.succeed(self)
        self._secured = defer.Deferred()
        self._deadline = self._reactor.callLater(timeout, self._fail, Failure.NO_ANSWER)
        if start_tls:
            asked = self._request(pureldap.LDAPStartTLSRequest(), None)
            asked.addCallback(self._start_tls)
            asked.addErrback(self._fail_with)
        secured: defer.Deferred[_Link] = self._secured.addCallback(lambda _: self)
        return secured.addBoth(self._end_deadline)

    def _start_tls(self, answer: tuple[Any, Any]) -> None:
        response, _ = answer
        if (
            not isinstance(response, pureldap.LDAPExtendedResponse)
            or response.resultCode != _SUCCESS
        ):
            raise _Broken(Failure.TLS)
        self._wire().startTLS(self._tls)

    def handshakeCompleted(self) -> None:
        assert self._tls is not None
        try:
            certificate = self._wire().getPeerCertificate()
            named = certificate is not None and certificate_matches(
                _peer_names(certificate), self._tls.names
            )
        except Exception:  # an unreadable certificate fails closed, as a TLS failure
            log.exception("reading the certificate of %s failed", self.url)
            self._fail(Failure.TLS)
            return
        if not named:
            self._fail(Failure.TLS_NAME)
            return
        secured, self._secured = self._secured, None
        if secured is not None:
            secured.callback(None)

    def _fail_with(self, failure: TwistedFailure) -> None:
        self._fail(_category(failure, connecting=True))

    def _fail(self, category: Failure) -> None:
        secured, self._secured = self._secured, None
        self.abort()
        if secured is not None:
            secured.errback(_Broken(category))

    def _end_deadline(self, result: Any) -> Any:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        return result

    # -- the bind ----------------------------------------------------------------------------

    def bind(
        self, dn: str, password: bytes, controls: Any, timeout: float
    ) -> "defer.Deferred[tuple[int, str, bytes | None]]":
        """Send one simple bind; fires with (result code, diagnostic message, ppolicy value).

        Fails with _Broken: DROPPED (the connection was lost), NO_ANSWER (none within
        `timeout`: the connection is then dropped), ERROR (a malformed answer).
        """
        self._deadline = self._reactor.callLater(timeout, self._no_answer)
        request = pureldap.LDAPBindRequest(dn=dn, auth=password)
        sent = self._request(request, controls)
        return sent.addCallback(_bind_answer).addBoth(self._end_deadline)

    def _no_answer(self) -> None:
        self._deadline = None
        self._fail_pending(_Broken(Failure.NO_ANSWER))
        self.abort()

    def _request(self, operation: Any, controls: Any) -> "defer.Deferred[Any]":
        if not self.connected:
            return defer.fail(_Broken(Failure.DROPPED))
        assert self._pending is None, "one request at a time"
        self._last_id = self._last_id % _MAX_MESSAGE_ID + 1
        answered: defer.Deferred[Any] = defer.Deferred()
        self._pending = (self._last_id, answered)
        message = pureldap.LDAPMessage(operation, controls=controls, id=self._last_id)
        self._wire().write(message.toWire())
        return answered

    # -- the wire ----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            try:
                message, used = pureber.berDecodeObject(_DECODER, self._buffer)
            except pureber.BERExceptionInsufficientData:
                return
            except Exception:  # ldaptor asserts and raises anything on bad BER
                self._malformed()
                return
            if message is None:
                return
            self._buffer = self._buffer[used:]
            if not self._handle(message):
                self._malformed()
                return

    def _handle(self, message: Any) -> bool:
        if not isinstance(message, pureldap.LDAPMessage):
            return False
        if message.id == 0:
            # A Notice of Disconnection (RFC 4511 §4.4.1): the server is closing.
            self._fail_pending(_Broken(Failure.DROPPED))
            self.abort()
            return True
        if self._pending is None or self._pending[0] != message.id:
            return False
        _, answered = self._pending
        self._pending = None
        answered.callback((message.value, message.controls))
        return True

    def _malformed(self) -> None:
        self._fail_pending(_Broken(Failure.ERROR))
        self.abort()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[1].errback(exc)

    def connectionLost(self, reason: TwistedFailure = protocol.connectionDone) -> None:
        self.connected = False
        self._buffer = b""
        category = Failure.DROPPED
        if self._secured is not None:
            category = _category(reason, connecting=True)
            if category is Failure.UNREACHABLE:
                category = Failure.TLS  # lost during the handshake
        self._fail_pending(_Broken(category))
        secured, self._secured = self._secured, None
        if secured is not None:
            secured.errback(_Broken(category))
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if not self.lost.called:
            self.lost.callback(None)

    def close(self) -> None:
        """Unbind (RFC 4511 §4.3) and close."""
        if self.connected and self._pending is None:
            self._last_id = self._last_id % _MAX_MESSAGE_ID + 1
            unbind = pureldap.LDAPMessage(pureldap.LDAPUnbindRequest(), id=self._last_id)
            self._wire().write(unbind.toWire())
            self._wire().loseConnection()
        else:
            self.abort()

    def abort(self) -> None:
        """Close at once: the connection's state is unknown."""
        if self.transport is not None and self.connected:
            self._wire().abortConnection()

    def _wire(self) -> Any:
        # The TCP or TLS transport: ITransport, ITCPTransport, ISSLTransport, ITLSTransport.
        return self.transport


def _bind_answer(answer: tuple[Any, Any]) -> tuple[int, str, bytes | None]:
    response, controls = answer
    if not isinstance(response, pureldap.LDAPBindResponse):
        raise _Broken(Failure.ERROR)
    ppolicy = next((value for oid, _, value in controls or () if oid == _PPOLICY), None)
    message = response.errorMessage
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return int(response.resultCode), str(message or ""), ppolicy


# -- TLS ---------------------------------------------------------------------------------------


def _client_context(ca_file: Any) -> SSL.Context:
    """TLS 1.2 or later, the chain verified against `ca_file` (or the system's CAs); the
    name is checked after the handshake (`certificate_matches`), as `tls.VerifyingTls` does."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_PEER)
    if ca_file is not None:
        context.load_verify_locations(str(ca_file))
    else:
        context.set_default_verify_paths()
    return context


@implementer(IOpenSSLClientConnectionCreator)
class _ClientTls:
    def __init__(self, context: SSL.Context, names: tuple[str, ...]) -> None:
        self._context = context
        self.names = names
        # SNI carries a host name, never an address (RFC 6066 §3).
        self._sni = next((n for n in names if not is_address(n)), None)

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni.encode("idna"))
        connection.set_app_data(tls_protocol)
        connection.set_connect_state()
        return connection


def _peer_names(certificate: Any) -> dict[str, Any]:
    """A pyOpenSSL certificate's names in the shape of ``SSLSocket.getpeercert()``."""

    with warnings.catch_warnings():
        # Samba's generated certificates carry a negative serial number: cryptography warns
        # (RFC 5280 §4.1.2.2), Python's ssl module (the ldap3 path) accepts it. OpenSSL has
        # verified the chain already; only the names are read here.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        parsed = certificate.to_cryptography()
    entries: list[tuple[str, str]] = []
    try:
        names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        entries += [("DNS", value) for value in names.get_values_for_type(x509.DNSName)]
        entries += [
            ("IP Address", str(value)) for value in names.get_values_for_type(x509.IPAddress)
        ]
    common = [
        (("commonName", str(attribute.value)),)
        for attribute in parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    return {"subjectAltName": tuple(entries), "subject": tuple(common)}


# -- errors ------------------------------------------------------------------------------------


def _category(failure: TwistedFailure, *, connecting: bool = False) -> Failure:
    """What a failure of Twisted, OpenSSL or ours says about the server."""
    exc = failure.value
    if isinstance(exc, _Broken):
        return exc.failure
    if isinstance(exc, SSL.Error):
        return Failure.TLS_UNTRUSTED if "certificate verify failed" in str(exc) else Failure.TLS
    if isinstance(exc, error.ConnectError | error.DNSLookupError):
        return Failure.UNREACHABLE
    if isinstance(exc, error.ConnectionLost | error.ConnectionDone):
        return Failure.UNREACHABLE if connecting else Failure.DROPPED
    return Failure.ERROR
