"""The LDAP front's protocol: one `Connection` per client, translating operations into calls
of the gateway's services (SPEC §6).

Each request is decoded (`wire.py`), dispatched by its type through one explicit table, and
answered; blocking work (binds, store reads) runs through `Services.run`, a bounded thread
pool, so the event loop only ever encodes and decodes. What the handlers decide:

- who the connection is: anonymous, a service account, or a user (RFC 4513 §5);
- bind: service accounts against their hash, everyone else through the Authenticator; a DN
  with an empty password is an unauthenticated bind and refused (RFC 4513 §5.1.2);
- search: service accounts (and anonymous clients where configured) search the store; users
  may read their own entry; everyone may read the RootDSE (RFC 4512 §5.1);
- extended operations: StartTLS (RFC 4511 §4.14), WhoAmI (RFC 4532), Password Modify
  (RFC 3062); writes are refused with insufficientAccessRights.

A message that cannot be decoded ends the connection with a Notice of Disconnection
(RFC 4511 §4.4.1); every other problem is an LDAP result on that operation alone.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ldaptor.protocols import pureber, pureldap
from twisted.internet import defer, protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from gateway.auth.binds import AuthOutcome, AuthReason
from gateway.auth.routing import Subject
from gateway.auth.service_accounts import ServiceAccounts, ServiceBind
from gateway.config import Config
from gateway.errors import IdgateError, NotFound, UpstreamError
from gateway.outages import outage_of
from gateway.users.names import dn_parts
from gateway.users.tree import Container, DirectoryTree, Found, Scope, Target
from ldapproxy import entries, filters, wire
from ldapproxy.codes import Code, bind_result, error_result, outage_result
from ldapproxy.schema import SourceSchema, schema_of
from query.filter import Node

log = logging.getLogger("idgate.ldap")

WHO_AM_I = b"1.3.6.1.4.1.4203.1.11.3"
PASSWORD_MODIFY = b"1.3.6.1.4.1.4203.1.11.1"
START_TLS = b"1.3.6.1.4.1.1466.20037"
SUPPORTED_EXTENSIONS = (START_TLS, WHO_AM_I, PASSWORD_MODIFY)
SUPPORTED_CONTROLS = (wire.PAGED_RESULTS, wire.MANAGE_DSA_IT)


#: The outcome of a bind whose name no source can hold: the refusal every unknown name gets.
_NOWHERE = AuthOutcome(AuthReason.INVALID_CREDENTIALS)


class Runner(Protocol):
    """Runs a blocking call off the event loop; its Deferred fires on the loop."""

    def __call__(self, call: Callable[..., Any], /, *args: Any) -> "defer.Deferred[Any]": ...


class PasswordChanger(Protocol):
    def __call__(self, source_id: str, dn: str, old: str, new: str) -> None: ...


class Recorder(Protocol):
    """Where the front reports what it did (metrics); see `gateway.runtime.metrics`."""

    def bind(self, outcome: str) -> None: ...
    def search(self, result: str) -> None: ...


@dataclass
class Services:
    """What the front calls; built by the composition root (`gateway.runtime.main`)."""

    config: Config
    #: (name, password, the name's route): the Authenticator's verdict, on the event loop.
    authenticate: Callable[[str, str, Sequence[Subject]], "defer.Deferred[AuthOutcome]"]
    #: Where a bind name is looked up; empty when no source can hold it (the configuration
    #: alone says so).
    route: Callable[[str], Sequence[Subject]]
    accounts: ServiceAccounts
    tree: DirectoryTree
    include: Callable[[str, str], object]
    change_password: PasswordChanger
    run: Runner
    recorder: Recorder
    tls_context: Any = None
    #: A Deferred that fires after that many seconds, on a timer of the event loop: how a
    #: paced refusal (`AuthOutcome.answer_after`) waits without holding a thread. None
    #: answers at once (harnesses without a clock).
    delay: Callable[[float], "defer.Deferred[None]"] | None = None
    schemas: dict[str, SourceSchema] = field(init=False)
    #: Attribute names a filter may test (folded): every source's, and the containers'.
    known_attributes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.schemas = {s.id: schema_of(s) for s in self.config.sources}
        self.known_attributes = frozenset(
            {"objectclass", "dc", "ou", "o", "entrydn"}.union(
                *(schema.fields for schema in self.schemas.values())
            )
        )


# -- who a connection is --------------------------------------------------------------------


@dataclass(frozen=True)
class Anonymous:
    dn: str = ""


@dataclass(frozen=True)
class ServiceIdentity:
    dn: str


@dataclass(frozen=True)
class UserIdentity:
    dn: str
    source_id: str | None


Identity = Anonymous | ServiceIdentity | UserIdentity


class LdapError(Exception):
    """An operation's LDAP result other than success, raised by a handler."""

    def __init__(self, code: Code, message: str = "", matched: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.matched = matched


@dataclass
class PagedSearch:
    """State behind a paged-results cookie (RFC 2696), kept on the connection."""

    signature: tuple[Any, ...]
    after_id: str | None
    returned: int


@dataclass
class Operation:
    id: int
    #: RFC 4511 §4.11: Bind and StartTLS cannot be abandoned (nor Abandon and Unbind).
    abandonable: bool = True
    abandoned: threading.Event = field(default_factory=threading.Event)


# The response type of each request, for errors raised by its handler (RFC 4511 §4.2-4.12).
_RESPONSE_OF: dict[type, type] = {
    pureldap.LDAPBindRequest: pureldap.LDAPBindResponse,
    pureldap.LDAPSearchRequest: pureldap.LDAPSearchResultDone,
    pureldap.LDAPModifyRequest: pureldap.LDAPModifyResponse,
    pureldap.LDAPAddRequest: pureldap.LDAPAddResponse,
    pureldap.LDAPDelRequest: pureldap.LDAPDelResponse,
    pureldap.LDAPModifyDNRequest: pureldap.LDAPModifyDNResponse,
    pureldap.LDAPCompareRequest: pureldap.LDAPCompareResponse,
    pureldap.LDAPExtendedRequest: pureldap.LDAPExtendedResponse,
}


def _response_class(op: Any) -> type:
    for request, response in _RESPONSE_OF.items():
        if isinstance(op, request):
            return response
    return _RESPONSE_OF[pureldap.LDAPExtendedRequest]


def _ldap_string(raw: Any) -> str:
    """A request's LDAPString as text (RFC 4511 §4.1.2: UTF-8).

    Raises:
        LdapError: not an OCTET STRING (ldaptor decodes any element there: `bytes(n)` of an
            INTEGER n would be n zero bytes), or not UTF-8.
    """
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        raise LdapError(Code.PROTOCOL_ERROR, "a string was expected")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LdapError(Code.PROTOCOL_ERROR, "string is not UTF-8") from None


class Connection(protocol.Protocol, TimeoutMixin):
    """One client connection (RFC 4511 §5.1)."""

    def __init__(self, services: Services, *, tls: bool, max_message_bytes: int) -> None:
        self.services = services
        self.identity: Identity = Anonymous()
        self.tls = tls
        self._max = max_message_bytes
        self._buffer = b""
        self._open = False
        self._operations: dict[int, Operation] = {}
        self._pages: dict[bytes, PagedSearch] = {}
        # While a bind is in progress, later requests wait for it (RFC 4511 §4.2.1).
        self._binding: defer.Deferred[None] | None = None
        self._peer = "?"
        self._peer_host = ""
        self._handlers: dict[type, Callable[[wire.Request], Any]] = {
            pureldap.LDAPBindRequest: self.bind,
            pureldap.LDAPSearchRequest: self.search,
            pureldap.LDAPExtendedRequest: self.extended,
            pureldap.LDAPAbandonRequest: self.abandon,
            pureldap.LDAPUnbindRequest: self.unbind,
            pureldap.LDAPModifyRequest: self.refuse_write,
            pureldap.LDAPAddRequest: self.refuse_write,
            pureldap.LDAPDelRequest: self.refuse_write,
            pureldap.LDAPModifyDNRequest: self.refuse_write,
            pureldap.LDAPCompareRequest: self.refuse_write,
        }

    @property
    def _wire(self) -> Any:
        """The transport, untyped: zope interfaces do not type-check as instances."""
        return self.transport

    @property
    def busy(self) -> bool:
        """Whether an operation is in progress (shutdown waits for it to answer)."""
        return bool(self._operations)

    # -- the byte stream ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._open = True
        idle = self.services.config.ldap.idle_timeout_seconds
        self.setTimeout(idle or None)  # type: ignore[no-untyped-call]
        peer = self._wire.getPeer()
        self._peer_host = str(getattr(peer, "host", ""))
        self._peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._open = False
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        for operation in self._operations.values():
            operation.abandoned.set()
        self._operations.clear()
        self._pages.clear()

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()  # type: ignore[no-untyped-call]
        self._buffer += data
        while self._open and self._buffer:
            try:
                length = wire.frame_length(self._buffer, self._max)
                if length is None:
                    return
                frame, self._buffer = self._buffer[:length], self._buffer[length:]
                request = wire.decode(frame)
                if request.id == 0:
                    raise wire.BadMessage("messageID 0 is reserved")  # RFC 4511 §4.1.1.1
            except wire.BadMessage as exc:
                self._disconnect(Code.PROTOCOL_ERROR, str(exc))
                return
            self._receive(request)

    def _disconnect(self, code: Code, message: str) -> None:
        log.info("ldap disconnect", extra={"peer": self._peer, "reason": message})
        self._buffer = b""
        if self._open:
            self._wire.write(wire.notice_of_disconnection(code, message))
            self._wire.loseConnection()
        self._open = False

    def _send(self, message_id: int, op: Any, controls: list[Any] | None = None) -> None:
        if self._open:
            self._wire.write(wire.encode(message_id, op, controls))

    # -- dispatch -------------------------------------------------------------------------

    def _receive(self, request: wire.Request) -> None:
        if self._binding is not None and not isinstance(request.op, pureldap.LDAPAbandonRequest):
            self._binding.addCallback(lambda _: self._receive(request))
            return
        handler = next(
            (h for kind, h in self._handlers.items() if isinstance(request.op, kind)), None
        )
        if handler is None:  # a request type ldaptor decodes but LDAPv3 servers don't serve
            self._disconnect(Code.PROTOCOL_ERROR, "unknown operation")
            return
        operation = Operation(
            request.id,
            abandonable=not isinstance(request.op, pureldap.LDAPBindRequest)
            and not (
                isinstance(request.op, pureldap.LDAPExtendedRequest)
                and bytes(request.op.requestName) == START_TLS
            ),
        )
        if not isinstance(request.op, pureldap.LDAPAbandonRequest | pureldap.LDAPUnbindRequest):
            self._operations[request.id] = operation
        result = defer.maybeDeferred(self._checked, handler, request)
        result.addErrback(self._failed, request)
        result.addBoth(self._finished, operation)

    def _checked(self, handler: Callable[[wire.Request], Any], request: wire.Request) -> Any:
        if isinstance(request.op, pureldap.LDAPUnbindRequest):
            return handler(request)  # RFC 4511 §4.3: the connection ends, whatever it carries
        allowed = {wire.MANAGE_DSA_IT}
        if isinstance(request.op, pureldap.LDAPSearchRequest):
            allowed.add(wire.PAGED_RESULTS)
        for control in request.controls:
            if control.critical and control.oid not in allowed:
                # RFC 4511 §4.1.11: a critical control the server does not act on.
                raise LdapError(Code.UNAVAILABLE_CRITICAL_EXTENSION, "unsupported critical control")
        return handler(request)

    def _failed(self, failure: Failure, request: wire.Request) -> None:
        value = failure.value
        if isinstance(value, LdapError):
            error = value
        elif isinstance(value, wire.BadMessage):
            error = LdapError(Code.PROTOCOL_ERROR, str(value))
        elif isinstance(value, IdgateError):
            error = LdapError(*error_result(value))
        elif (outage := outage_of(value)) is not None:
            log.warning(
                "ldap operation refused, the store is %s: %s",
                outage.value,
                type(value).__name__,
                extra={"peer": self._peer, "operation": type(request.op).__name__},
            )
            error = LdapError(*outage_result(outage))
        else:
            log.error(
                "ldap operation failed: %s",
                failure.getErrorMessage(),
                extra={"peer": self._peer, "operation": type(request.op).__name__},
            )
            error = LdapError(Code.OTHER, "internal error")
        if isinstance(request.op, pureldap.LDAPBindRequest):
            self.identity = Anonymous()
        self._reply(request, error.code, error.message, error.matched)

    def _finished(self, _: object, operation: Operation) -> None:
        self._operations.pop(operation.id, None)

    def _reply(
        self,
        request: wire.Request,
        code: Code,
        message: str = "",
        matched: str = "",
        controls: list[Any] | None = None,
        **extra: Any,
    ) -> None:
        if isinstance(request.op, pureldap.LDAPAbandonRequest | pureldap.LDAPUnbindRequest):
            # No response is defined for either (RFC 4511 §4.3, §4.11): a critical control
            # refused on one means the operation is not performed, and nothing is sent
            # (§4.1.11 asks for unavailableCriticalExtension only where a response exists).
            return
        operation = self._operations.get(request.id)
        if operation is not None and operation.abandoned.is_set():
            return  # RFC 4511 §4.11: no response to an abandoned operation
        response = _response_class(request.op)(
            resultCode=int(code), matchedDN=matched, errorMessage=message, **extra
        )
        self._send(request.id, response, controls)

    # -- bind (RFC 4511 §4.2, RFC 4513 §5) --------------------------------------------------

    def bind(self, request: wire.Request) -> "defer.Deferred[None] | None":
        op = request.op
        self.identity = Anonymous()  # RFC 4511 §4.2.1: a bind starts from anonymous
        self._pages.clear()
        if op.version != 3:
            raise LdapError(Code.PROTOCOL_ERROR, "only LDAP version 3 is supported")
        if op.sasl:
            self.services.recorder.bind("sasl_refused")
            raise LdapError(Code.AUTH_METHOD_NOT_SUPPORTED, "SASL binds are not supported")
        name, password = _ldap_string(op.dn), _ldap_string(op.auth)
        if not name and not password:
            self.services.recorder.bind("anonymous")
            self._reply(request, Code.SUCCESS)  # RFC 4513 §5.1.1
            return None
        if not password:
            # RFC 4513 §5.1.2: an unauthenticated bind; never forwarded, never a success.
            self.services.recorder.bind("unauthenticated_refused")
            raise LdapError(
                Code.UNWILLING_TO_PERFORM, "unauthenticated bind (name without password) refused"
            )
        account = self.services.accounts.find(name)
        route: Sequence[Subject] = ()
        if account is None:
            route = self.services.route(name)
            if not route:
                # A name no source can hold is refused here, on the event loop: no thread, no
                # store, no hash. Nothing is hidden by that (the configuration decides it), and
                # a flood of such names costs the gateway next to nothing (SPEC §6).
                self._user_bound(_NOWHERE, request, name)
                return None
        binding: defer.Deferred[None] = defer.Deferred()
        self._binding = binding

        def done(identity: Identity | None) -> None:
            self._binding = None
            if identity is not None:
                self.identity = identity
            binding.callback(None)

        def failed(failure: Failure) -> Failure:
            done(None)
            return failure

        if account is not None:
            work = self.services.run(
                self.services.accounts.verify, account, password, self._peer_host
            )
            work.addCallback(self._service_bound, request, account.dn)
        else:
            # The bind path runs on this loop; only its blocking leaves take a thread.
            work = self.services.authenticate(name, password, route)
            work.addCallback(self._held)
            work.addCallback(self._user_bound, request, name)
        work.addErrback(failed)
        work.addCallback(done)
        return work

    def _service_bound(
        self, outcome: ServiceBind, request: wire.Request, dn: str
    ) -> Identity | None:
        ok = outcome is ServiceBind.OK
        self.services.recorder.bind("service" if ok else f"service_{outcome.value}")
        fields = {"peer": self._peer, "bind_dn": dn, "service": True, "result": outcome.value}
        if ok:
            log.info("ldap bind", extra=fields)
        else:
            log.warning("ldap service account bind refused: %s", outcome.value, extra=fields)
        if not ok:
            # The same answer whatever the reason: a client learns nothing of the limits.
            self._reply(request, Code.INVALID_CREDENTIALS, "invalid credentials")
            return None
        self._reply(request, Code.SUCCESS)
        return ServiceIdentity(dn)

    def _held(self, outcome: AuthOutcome) -> "AuthOutcome | defer.Deferred[AuthOutcome]":
        """The outcome once its answer may go (SPEC §6: the same answer in the same time)."""
        if outcome.answer_after <= 0 or self.services.delay is None:
            return outcome
        return self.services.delay(outcome.answer_after).addCallback(lambda _: outcome)

    def _user_bound(
        self, outcome: AuthOutcome, request: wire.Request, name: str
    ) -> Identity | None:
        code, message = bind_result(outcome)
        self.services.recorder.bind(outcome.reason.value)
        log.info(
            "ldap bind",
            extra={"peer": self._peer, "bind_name": name, "result": outcome.reason.value},
        )
        self._reply(request, code, message)
        if not outcome.ok:
            return None
        return UserIdentity(outcome.dn or name, outcome.source_id)

    # -- search (RFC 4511 §4.5) -------------------------------------------------------------

    def search(self, request: wire.Request) -> "defer.Deferred[None] | None":
        op = request.op
        base = _ldap_string(op.baseObject)
        scope = Scope(op.scope) if op.scope in (0, 1, 2) else None
        if scope is None:
            raise LdapError(Code.PROTOCOL_ERROR, "unknown search scope")
        attributes = [_ldap_string(a) for a in op.attributes]
        limits = (op.sizeLimit, op.timeLimit)  # RFC 4511 §4.5.1: INTEGER (0 .. maxInt)
        if not all(type(v) is int for v in limits) or min(limits) < 0:
            raise LdapError(
                Code.PROTOCOL_ERROR, "size and time limits are INTEGERs from 0 to maxInt"
            )
        if not base and scope is Scope.BASE:
            self._root_dse(request, op.filter, attributes, bool(op.typesOnly))
            return None
        self._may_search(base, scope)
        page = self._page_request(request)
        limit = self._size_limit(op.sizeLimit)
        time_limit = op.timeLimit or self.services.config.ldap.time_limit_seconds
        time_limit = min(time_limit, self.services.config.ldap.time_limit_seconds)
        deadline = time.monotonic() + time_limit
        operation = self._operations[request.id]
        signature = (base, int(scope), op.filter.toWire(), tuple(attributes), bool(op.typesOnly))
        state: PagedSearch | None = None
        if page is not None and page.cookie:
            state = self._pages.pop(page.cookie, None)
            if state is None or state.signature != signature:
                raise LdapError(
                    Code.UNWILLING_TO_PERFORM, "paged results cookie is not valid for this search"
                )
            if page.size == 0:  # RFC 2696 §3: the client abandons the paged search
                self._reply(request, Code.SUCCESS, controls=[wire.page_response(b"")])
                return None
        elif page is not None and page.size == 0:
            self._reply(request, Code.SUCCESS, controls=[wire.page_response(b"")])
            return None
        want = limit if page is None else min(page.size, limit)
        if page is not None and op.sizeLimit:
            returned = state.returned if state else 0
            want = min(want, max(op.sizeLimit - returned, 0))
        work = self.services.run(
            self._collect, base, scope, op.filter, want, state, deadline, operation
        )
        work.addCallback(
            self._send_results,
            request,
            attributes,
            bool(op.typesOnly),
            page,
            state,
            signature,
            limit,
        )
        return work

    def _may_search(self, base: str, scope: Scope) -> None:
        identity = self.identity
        if isinstance(identity, ServiceIdentity):
            return
        if isinstance(identity, Anonymous) and self.services.config.ldap.allow_anonymous_search:
            return
        if isinstance(identity, UserIdentity) and scope is Scope.BASE:
            same = _same_dn(base, identity.dn)
            if same:
                return  # a user may read their own entry
        raise LdapError(
            Code.INSUFFICIENT_ACCESS_RIGHTS, "searching needs a bind as a service account"
        )

    def _page_request(self, request: wire.Request) -> wire.PageRequest | None:
        for control in request.controls:
            if control.oid == wire.PAGED_RESULTS:
                return wire.decode_page_request(control.value)
        return None

    def _size_limit(self, requested: int) -> int:
        server = self.services.config.ldap.size_limit
        return min(requested, server) if requested else server

    def _collect(
        self,
        base: str,
        scope: Scope,
        ldap_filter: Any,
        want: int,
        state: PagedSearch | None,
        deadline: float,
        operation: Operation,
    ) -> "Collected":
        """Blocking: the entries of one search (or one page), at most `want` + 1 users."""
        tree = self.services.tree
        try:
            targets = tree.plan(base, scope)
        except ValueError:
            raise LdapError(Code.INVALID_DN_SYNTAX, "invalid base DN") from None
        reached = tree.containers(base, scope)
        if not reached and not targets:
            raise LdapError(Code.NO_SUCH_OBJECT, "no such entry")
        matching = [] if state is not None else self._matching(reached, ldap_filter)
        # Container entries count against the size limit like users (RFC 4511 §4.5.1.4).
        containers = matching[:want]
        cut = len(matching) > want
        want -= len(containers)
        queries = self._queries(targets, ldap_filter)
        after = state.after_id if state else None
        users, more, timed_out = self._run_query(queries, after, want, deadline, operation)
        if scope is Scope.BASE and not users and not reached and tree.find_dn(base) is None:
            raise LdapError(Code.NO_SUCH_OBJECT, "no such entry")
        # RADIUS servers look users up by login name: one the store has not seen yet is
        # looked up in the directory by exact name, and added, before the answer (SPEC §6).
        first_page_empty = not users and state is None and not timed_out
        if (
            first_page_empty
            and scope is not Scope.BASE
            and self._include_missing(targets, ldap_filter)
        ):
            users, more, timed_out = self._run_query(queries, after, want, deadline, operation)
        return Collected(containers=containers, users=users, more=more or cut, timed_out=timed_out)

    def _matching(self, containers: list[Container], ldap_filter: Any) -> list[Container]:
        try:
            return [
                c
                for c in containers
                if filters.matches(
                    ldap_filter, entries.container_values(c), self.services.known_attributes
                )
            ]
        except filters.FilterTooDeep:
            raise LdapError(
                Code.UNWILLING_TO_PERFORM, "filter nested too deeply or too large"
            ) from None

    def _queries(self, targets: Sequence[Target], ldap_filter: Any) -> list[tuple[Target, Node]]:
        try:
            return [
                (t, filters.translate(ldap_filter, self.services.schemas[t.source.id]))
                for t in targets
            ]
        except filters.FilterTooDeep:
            raise LdapError(
                Code.UNWILLING_TO_PERFORM, "filter nested too deeply or too large"
            ) from None

    def _run_query(
        self,
        queries: list[tuple[Target, Node]],
        after: str | None,
        want: int,
        deadline: float,
        operation: Operation,
    ) -> tuple[list[Found], bool, bool]:
        users: list[Found] = []
        for found in self.services.tree.search(queries, after_id=after, limit=want + 1):
            if operation.abandoned.is_set():
                break
            if time.monotonic() > deadline:
                return users, False, True
            users.append(found)
        more = len(users) > want
        return users[:want], more, False

    def _include_missing(self, targets: Sequence[Target], ldap_filter: Any) -> bool:
        added = False
        for target in targets:
            source = target.source
            if source.kind not in ("ldap", "ad"):
                continue
            for name in filters.login_values(ldap_filter, self.services.schemas[source.id]):
                try:
                    added = self.services.include(source.id, name) is not None or added
                except (UpstreamError, NotFound) as exc:
                    # An unreachable directory answers "no such user" here, as a store
                    # search that finds nobody would; the bind path reports it as 52.
                    log.warning("exact lookup in source %s failed: %s", source.id, exc)
        return added

    def _send_results(
        self,
        collected: "Collected",
        request: wire.Request,
        attributes: list[str],
        types_only: bool,
        page: wire.PageRequest | None,
        state: PagedSearch | None,
        signature: tuple[Any, ...],
        limit: int,
    ) -> None:
        operation = self._operations.get(request.id)
        if operation is not None and operation.abandoned.is_set():
            return
        for container in collected.containers:
            user, operational = entries.container_entry(container)
            self._send_entry(request.id, container.dn, user, operational, attributes, types_only)
        for found in collected.users:
            schema = self.services.schemas[found.user.source_id]
            user, operational = entries.user_to_entry(found.user, found.dn, schema)
            self._send_entry(request.id, found.dn, user, operational, attributes, types_only)
        count = len(collected.containers) + len(collected.users)
        self.services.recorder.search("ok")
        if collected.timed_out:
            self._reply(request, Code.TIME_LIMIT_EXCEEDED, "time limit exceeded")
            return
        if page is not None:
            returned = (state.returned if state else 0) + count
            if limit and returned >= limit and collected.more:
                # The client's own sizeLimit spans the pages of one search (RFC 2696 §3).
                self._reply(
                    request,
                    Code.SIZE_LIMIT_EXCEEDED,
                    f"more than {limit} entries match",
                    controls=[wire.page_response(b"")],
                )
                return
            cookie = b""
            if collected.more and collected.users:
                cookie = secrets.token_bytes(16)
                self._pages[cookie] = PagedSearch(signature, collected.users[-1].user.id, returned)
                while len(self._pages) > 16:  # a client that never finishes its pages
                    self._pages.pop(next(iter(self._pages)))
            self._reply(request, Code.SUCCESS, controls=[wire.page_response(cookie)])
            return
        if collected.more:
            self._reply(request, Code.SIZE_LIMIT_EXCEEDED, f"more than {limit} entries match")
            return
        self._reply(request, Code.SUCCESS)

    def _send_entry(
        self,
        message_id: int,
        dn: str,
        user: entries.Attributes,
        operational: entries.Attributes,
        requested: list[str],
        types_only: bool,
    ) -> None:
        chosen = entries.select(user, operational, requested, types_only)
        entry = pureldap.LDAPSearchResultEntry(objectName=dn, attributes=entries.encoded(chosen))
        self._send(message_id, entry)

    def _root_dse(
        self, request: wire.Request, ldap_filter: Any, attributes: list[str], types_only: bool
    ) -> None:
        """RFC 4512 §5.1; its attributes are operational, but clients expect them by default."""
        contexts = self.services.tree.naming_contexts()
        user: entries.Attributes = [
            ("objectClass", ["top", "extensibleObject"]),
            ("namingContexts", contexts),
            ("supportedLDAPVersion", ["3"]),
            ("supportedExtension", [oid.decode() for oid in SUPPORTED_EXTENSIONS]),
            ("supportedControl", [oid.decode() for oid in SUPPORTED_CONTROLS]),
            ("supportedSASLMechanisms", []),
            ("vendorName", ["idgate"]),
        ]
        user = [(name, values) for name, values in user if values]
        try:
            matched = filters.matches(ldap_filter, dict(user), self.services.known_attributes)
        except filters.FilterTooDeep:
            raise LdapError(
                Code.UNWILLING_TO_PERFORM, "filter nested too deeply or too large"
            ) from None
        if matched:
            self._send_entry(request.id, "", user, [], attributes, types_only)
        self._reply(request, Code.SUCCESS)

    # -- extended operations (RFC 4511 §4.12) -----------------------------------------------

    def extended(self, request: wire.Request) -> "defer.Deferred[None] | None":
        name = bytes(request.op.requestName)
        if name == START_TLS:
            self._start_tls(request)
            return None
        if name == WHO_AM_I:
            identity = self.identity
            authz = f"dn:{identity.dn}" if identity.dn else ""  # RFC 4532 §2.2
            self._reply(request, Code.SUCCESS, response=authz.encode())
            return None
        if name == PASSWORD_MODIFY:
            return self._password_modify(request)
        # RFC 4511 §4.12: an unrecognised requestName is a protocolError.
        raise LdapError(Code.PROTOCOL_ERROR, "unsupported extended operation")

    def _start_tls(self, request: wire.Request) -> None:
        context = self.services.tls_context
        if context is None:
            raise LdapError(Code.PROTOCOL_ERROR, "StartTLS is not configured")
        if self.tls:
            raise LdapError(Code.OPERATIONS_ERROR, "TLS is already established")
        if len(self._operations) > 1:  # RFC 4511 §4.14.1: no outstanding operations
            raise LdapError(Code.OPERATIONS_ERROR, "operations are outstanding")
        self._reply(request, Code.SUCCESS, responseName=START_TLS)
        # Data written above goes out in the clear; TLS starts after it (RFC 4511 §4.14.2).
        self._wire.startTLS(context)
        self.tls = True
        return None

    def _password_modify(self, request: wire.Request) -> "defer.Deferred[None]":
        """RFC 3062: change the bound user's password in their directory, as the user."""
        if not self.tls:
            raise LdapError(Code.CONFIDENTIALITY_REQUIRED, "password changes need TLS")
        identity = self.identity
        if not isinstance(identity, UserIdentity) or identity.source_id is None:
            raise LdapError(Code.INSUFFICIENT_ACCESS_RIGHTS, "bind as the user first")
        user_identity, old, new = _password_modify_fields(request.op.requestValue)
        if user_identity is not None and not _same_dn(user_identity, identity.dn):
            raise LdapError(Code.INSUFFICIENT_ACCESS_RIGHTS, "only your own password")
        if not old or not new:
            # Without the old password the gateway cannot act as the user upstream, and it
            # generates no passwords (RFC 3062 §3 lets a server refuse both).
            raise LdapError(Code.UNWILLING_TO_PERFORM, "oldPasswd and newPasswd are required")
        work = self.services.run(
            self.services.change_password, identity.source_id, identity.dn, old, new
        )
        work.addCallback(lambda _: self._reply(request, Code.SUCCESS))
        return work

    # -- the rest ---------------------------------------------------------------------------

    def abandon(self, request: wire.Request) -> None:
        target = self._operations.get(int(request.op.value))
        if target is not None and target.abandonable:
            target.abandoned.set()  # RFC 4511 §4.11: no response, to either

    def close(self) -> None:
        """Close the connection (shutdown)."""
        self._open = False
        self._wire.loseConnection()

    def unbind(self, request: wire.Request) -> None:
        self._open = False
        self._wire.loseConnection()

    def refuse_write(self, request: wire.Request) -> None:
        raise LdapError(Code.INSUFFICIENT_ACCESS_RIGHTS, "the gateway's directory is read-only")


@dataclass(frozen=True)
class Collected:
    containers: list[Container]
    users: list[Found]
    more: bool
    timed_out: bool


def _same_dn(a: str, b: str) -> bool:
    parts = dn_parts(a)
    return parts is not None and parts == dn_parts(b)


def _password_modify_fields(value: bytes | None) -> tuple[str | None, str, str]:
    """RFC 3062 §2 PasswdModifyRequestValue: (userIdentity, oldPasswd, newPasswd)."""
    if value is None:
        return None, "", ""
    try:
        decoded, _ = pureber.berDecodeObject(
            pureldap.LDAPBERDecoderContext_LDAPPasswordModifyRequest(
                fallback=wire.strict_context()
            ),
            value,
        )
        fields = {type(item).__name__: item.value for item in decoded}
    except Exception as exc:
        raise LdapError(Code.PROTOCOL_ERROR, "malformed password modify request") from exc
    identity = fields.get("LDAPPasswordModifyRequest_userIdentity")
    return (
        None if identity is None else _ldap_string(identity),
        _ldap_string(fields.get("LDAPPasswordModifyRequest_oldPasswd", b"")),
        _ldap_string(fields.get("LDAPPasswordModifyRequest_newPasswd", b"")),
    )


class LdapFactory(protocol.ServerFactory):
    """Makes a `Connection` per client; `tls` says whether the listener is LDAPS."""

    def __init__(self, services: Services, *, tls: bool = False) -> None:
        self.services = services
        self.tls = tls
        self.connections: set[Connection] = set()

    def buildProtocol(self, addr: Any) -> Connection:
        connection = _TrackedConnection(
            self.services,
            tls=self.tls,
            max_message_bytes=self.services.config.ldap.max_message_bytes,
        )
        connection.factory = self
        return connection


class _TrackedConnection(Connection):
    factory: LdapFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.connections.add(self)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        super().connectionLost(reason)
        self.factory.connections.discard(self)
