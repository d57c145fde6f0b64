"""Which upstream LDAP client the bind path should use: CPU per operation, side by side
(issue 17, item 2).

One throwaway slapd loaded with `--users` bench users. In this process, on Twisted's asyncio
reactor (the one the gateway's LDAP front runs on, `gateway.runtime.main`), every client
performs the two upstream operations of a bind, the same requests for all:

  bind    a simple bind as a user with the right password, with the password policy request
          control, as `Directory.verify_password` sends it for an `ldap` source;
  search  the JIT read: a subtree search of the source's root for
          `(&(objectClass=inetOrgPerson)(uid=<uid>))`, size limit 2, time limit, aliases never
          dereferenced, the attributes `requested_attributes()` names.

The clients:

  gateway      today's code path, for reference: `gateway.directory.Directory`
               (`verify_password`, `find_user`) called through `deferToThreadPool`, as the LDAP
               front does; its own pools, error classification and entry decoding included;
  ldap3        bare ldap3 synchronous connections driven from a Twisted thread pool: one bind
               connection and one service connection per worker thread, the options of
               `gateway.directory.connect`;
  ldaptor      ldaptor's `LDAPClient` with `pureldap` requests on the reactor;
  ldap3-ber    ldap3's message building (`ldap3.operation.*`, pyasn1) and its fast decoder
               (`ldap3.utils.asn1`) under a small Twisted protocol of this file: ldap3 without
               its synchronous socket strategy;
  python-ldap  python-ldap's asynchronous calls (`simple_bind`, `search_ext`), results polled
               with `result3(timeout=0)` when the reactor sees its socket readable. Reference
               only: python-ldap has no wheels and cannot be a dependency.

Connections are plain ldap:// unless `--tls`: then ldaps://, each client verifying the
certificate its own way (ldap3 with the gateway's `VerifyingTls`, ldaptor and ldap3-ber with
Twisted's TLS, python-ldap with libldap's).

Binds go one per connection at a time (RFC 4511 §4.2.1: a bind must not overlap other
operations on its connection), so a client has one bind connection per operation in flight.
The reactor clients multiplex every search on one service connection, as an asynchronous
service pool would; ldap3's synchronous connections cannot, so its workers hold one each.

Each case (client x operation x operations in flight) is warmed up, then measured `--rounds`
times over `--ops` operations, the rounds interleaved across cases so that a burst of other
work on the machine does not fall on one case only. Per round: this process's CPU time
(`time.process_time()`: every thread, the worker threads included; slapd is another
process, its CPU is read from /proc and shown apart), the wall time, each operation's
latency from its start to its answer on the reactor. The table shows the median of the
rounds.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import ldap3
from ldap3.operation.bind import bind_operation, bind_response_to_dict_fast
from ldap3.operation.search import search_operation, search_result_entry_response_to_dict_fast
from ldap3.protocol.convert import build_controls_list
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.asn1 import (
    compute_ber_size,
    decode_message_fast,
    encode,
    ldap_result_to_dict_fast,
)
from ldaptor.protocols import pureldap
from twisted.internet import defer, endpoints, protocol, ssl
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from bench.auth import gateway_config
from bench.machine import cpu_seconds, environment
from bench.result import Result
from bench.users import BenchUser, generate, load
from gateway.config import LdapSource, parse_config
from gateway.directory import Directory
from gateway.directory.attributes import requested_attributes
from gateway.directory.filters import equality, escape_value, scope_filter
from gateway.directory.names import NameKind
from gateway.directory.outcomes import BindResult
from gateway.directory.ppolicy import PPOLICY_OID
from gateway.directory.tls import VerifyingTls, client_context
from tests.servers.slapd import Slapd

SUMMARY = "CPU per upstream bind and search of each candidate LDAP client (issue 17)"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIENTS = ("gateway", "ldap3", "ldaptor", "ldap3-ber", "python-ldap")
OPERATIONS = ("bind", "search")
DEFAULT_USERS, DEFAULT_OPS, DEFAULT_ROUNDS, DEFAULT_WARMUP = 1_000, 2_000, 3, 200
DEFAULT_INFLIGHT = (1, 8)
# A 1-minute load average above this before the start means the machine is not quiet.
_BUSY_LOAD = 0.5
# The code measured: an uncommitted change there is recorded with the figures.
_MEASURED = ["gateway"]
_SUCCESS = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--users", type=int, default=DEFAULT_USERS, help=f"bench users (default {DEFAULT_USERS:,})"
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=DEFAULT_OPS,
        help=f"operations per round (default {DEFAULT_OPS:,})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds per case (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help=f"unmeasured operations before a case's first round (default {DEFAULT_WARMUP})",
    )
    parser.add_argument(
        "--inflight",
        type=_numbers,
        default=DEFAULT_INFLIGHT,
        help="comma-separated numbers of operations in flight (default 1,8)",
    )
    parser.add_argument(
        "--clients",
        type=_clients,
        default=CLIENTS,
        help=f"comma-separated clients (default all: {','.join(CLIENTS)})",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="every connection over ldaps://, the server certificate verified (default plain)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the users' order")
    parser.add_argument(
        "--no-save", action="store_true", help=f"do not write the JSON result to {RESULTS}"
    )


def _numbers(text: str) -> tuple[int, ...]:
    numbers = tuple(int(part) for part in text.split(",") if part.strip())
    if not numbers or any(number < 1 for number in numbers):
        raise argparse.ArgumentTypeError("give numbers of at least 1")
    return numbers


def _clients(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(names) - set(CLIENTS)
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"clients are among {', '.join(CLIENTS)}")
    return names


# -- what every client does ----------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What every client sends, derived from the gateway's own configuration of the source."""

    host: str
    port: int
    service_dn: str
    service_password: str
    root: str
    object_class: str
    login_attribute: str
    attributes: tuple[str, ...]
    time_limit: int
    #: ldaps:// verified against this CA (`--tls`), else plain ldap://.
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        return f"{'ldaps' if self.ca_file else 'ldap'}://{self.host}:{self.port}"

    def filter_text(self, uid: str) -> str:
        """The search filter as the gateway writes it (escaped, RFC 4515)."""
        return scope_filter(
            self.object_class, None, equality(self.login_attribute, escape_value(uid))
        )


#: One operation: None when the answer is the expected one, else what was wrong.
Answer = str | None


class Client(Protocol):
    name: str

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]": ...

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]": ...

    def close(self) -> None: ...


def _bind_answer(code: int, ppolicy: bytes | None) -> Answer:
    # Taken, not decoded: a plain success carries no ppolicy response control, and decoding
    # one (`classify_bind`) costs the gateway the same whatever the client.
    del ppolicy
    return None if code == _SUCCESS else f"bind result {code}"


def _search_answer(code: int, dns: Sequence[str], user: BenchUser) -> Answer:
    if code != _SUCCESS:
        return f"search result {code}"
    if len(dns) != 1 or dns[0].lower() != user.dn.lower():
        return f"{len(dns)} entries"
    return None


# -- gateway: today's Directory in a thread pool -------------------------------------------


class GatewayDirectory:
    """The gateway's `Directory`: `verify` on the reactor (ldaptor's codec, issue 17), and
    `find_user` (ldap3) through `deferToThreadPool`."""

    name = "gateway"

    def __init__(self, reactor: Any, pool: ThreadPool, source: LdapSource) -> None:
        self._reactor = reactor
        self._pool = pool
        self._directory = Directory(source, reactor=reactor)

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        def answer(outcome: BindResult) -> Answer:
            return None if outcome is BindResult.OK else outcome.value

        return self._directory.verify(user.dn, user.password).addCallback(answer)

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        def call() -> Answer:
            entry = self._directory.find_user(NameKind.LOGIN, user.uid)
            return _search_answer(_SUCCESS, [entry.dn] if entry else [], user)

        return deferToThreadPool(self._reactor, self._pool, call)

    def close(self) -> None:
        self._directory.close()


# -- ldap3: synchronous connections in a thread pool ---------------------------------------


class Ldap3Threads:
    """Bare ldap3 SYNC connections, one bind and one service connection per worker thread."""

    name = "ldap3"

    def __init__(self, reactor: Any, pool: ThreadPool, request: Request) -> None:
        self._reactor = reactor
        self._pool = pool
        self._request = request
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._controls = [(PPOLICY_OID, False, None)]

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        password = user.password.encode()

        def call() -> Answer:
            connection = self._connection("binder", service=False)
            connection.user = user.dn
            connection.authentication = ldap3.SIMPLE
            connection.password = password
            try:
                connection.bind(read_server_info=False, controls=self._controls)
            finally:
                connection.password = None
            result = connection.result
            control = (result.get("controls") or {}).get(PPOLICY_OID)
            return _bind_answer(result["result"], control.get("value") if control else None)

        return deferToThreadPool(self._reactor, self._pool, call)

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        request = self._request

        def call() -> Answer:
            connection = self._connection("searcher", service=True)
            connection.search(
                search_base=request.root,
                search_filter=request.filter_text(user.uid),
                search_scope=ldap3.SUBTREE,
                dereference_aliases=ldap3.DEREF_NEVER,
                attributes=list(request.attributes),
                size_limit=2,
                time_limit=request.time_limit,
            )
            entries = [r for r in connection.response or () if r.get("type") == "searchResEntry"]
            return _search_answer(
                connection.result["result"], [str(r["dn"]) for r in entries], user
            )

        return deferToThreadPool(self._reactor, self._pool, call)

    def _connection(self, role: str, *, service: bool) -> Any:
        connection = getattr(self._local, role, None)
        if connection is None:
            request = self._request
            server = ldap3.Server(
                request.host,
                port=request.port,
                use_ssl=request.ca_file is not None,
                # The gateway's own verification: its context, its name check.
                tls=VerifyingTls(client_context(request.ca_file), (request.host,))
                if request.ca_file
                else None,
                get_info=ldap3.NONE,
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
                receive_timeout=10,
            )
            connection.open(read_server_info=False)
            if service:
                connection.user = request.service_dn
                connection.password = request.service_password
                connection.authentication = ldap3.SIMPLE
                if not connection.bind(read_server_info=False):
                    raise RuntimeError(f"service bind refused: {connection.result}")
            setattr(self._local, role, connection)
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.unbind()


# -- ldaptor: LDAPClient on the reactor -----------------------------------------------------


async def _connect(reactor: Any, request: Request, made: protocol.Protocol) -> Any:
    endpoint: Any = endpoints.TCP4ClientEndpoint(reactor, request.host, request.port, timeout=10)
    if request.ca_file is not None:
        # Twisted's TLS (pyOpenSSL, memory BIOs): chain and name verified by service_identity.
        authority = ssl.Certificate.loadPEM(request.ca_file.read_bytes())
        options = ssl.optionsForClientTLS(request.host, trustRoot=authority)
        endpoint = endpoints.wrapClientTLS(options, endpoint)
    return await endpoints.connectProtocol(endpoint, made)


class Ldaptor:
    """`LDAPClient.send_multiResponse_ex` with `pureldap` requests; filters built as objects
    (the string parser, `ldaptor.ldapfilter`, is pyparsing and far too slow for a hot path)."""

    name = "ldaptor"

    def __init__(self, request: Request, binders: list[Any], searcher: Any) -> None:
        self._request = request
        self._binders = binders
        self._searcher = searcher
        self._controls = [(PPOLICY_OID, False, None)]
        self._ppolicy = PPOLICY_OID.encode()

    @classmethod
    async def open(cls, reactor: Any, request: Request, binders: int) -> "Ldaptor":
        # Imported late: ldapclient imports the global reactor at module level, which would
        # install the default reactor unless the asyncio one is installed first.
        from ldaptor.protocols.ldap.ldapclient import LDAPClient

        clients = [await _connect(reactor, request, LDAPClient()) for _ in range(binders + 1)]
        searcher = clients.pop()
        response, _ = await searcher.send_multiResponse_ex(
            pureldap.LDAPBindRequest(dn=request.service_dn, auth=request.service_password)
        )
        if response.resultCode != _SUCCESS:
            raise RuntimeError(f"service bind refused: {response.resultCode}")
        return cls(request, clients, searcher)

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        bind = pureldap.LDAPBindRequest(dn=user.dn, auth=user.password.encode())
        sent = self._binders[lane].send_multiResponse_ex(bind, self._controls)
        return sent.addCallback(self._bound)

    def _bound(self, answer: tuple[Any, Any]) -> Answer:
        response, controls = answer
        ppolicy = next((v for oid, _, v in controls or () if oid == self._ppolicy), None)
        return _bind_answer(response.resultCode, ppolicy)

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        request = self._request
        condition = pureldap.LDAPFilter_and(
            [
                pureldap.LDAPFilter_equalityMatch(
                    attributeDesc=pureldap.LDAPAttributeDescription("objectClass"),
                    assertionValue=pureldap.LDAPAssertionValue(request.object_class),
                ),
                pureldap.LDAPFilter_equalityMatch(
                    attributeDesc=pureldap.LDAPAttributeDescription(request.login_attribute),
                    assertionValue=pureldap.LDAPAssertionValue(user.uid),
                ),
            ]
        )
        search = pureldap.LDAPSearchRequest(
            baseObject=request.root,
            scope=pureldap.LDAP_SCOPE_wholeSubtree,
            derefAliases=pureldap.LDAP_DEREF_neverDerefAliases,
            sizeLimit=2,
            timeLimit=request.time_limit,
            filter=condition,
            attributes=request.attributes,
        )
        answered: defer.Deferred[Answer] = defer.Deferred()
        entries: list[tuple[str, dict[bytes, list[bytes]]]] = []

        def handle(response: Any, controls: Any) -> bool:
            if isinstance(response, pureldap.LDAPSearchResultEntry):
                dn = response.objectName.decode()
                entries.append((dn, {name: values for name, values in response.attributes}))
                return False
            if isinstance(response, pureldap.LDAPSearchResultDone):
                answered.callback(
                    _search_answer(response.resultCode, [dn for dn, _ in entries], user)
                )
                return True
            return False  # a continuation reference: not in this directory

        sent = self._searcher.send_multiResponse_ex(search, None, handle)
        sent.addErrback(answered.errback)
        return answered

    def close(self) -> None:
        for client in [*self._binders, self._searcher]:
            with contextlib.suppress(Exception):
                client.unbind()


# -- ldap3-ber: ldap3's encoder and fast decoder under a Twisted protocol -------------------


class Ldap3Protocol(protocol.Protocol):
    """An LDAP client protocol whose messages are built by ldap3 (pyasn1) and read by ldap3's
    fast decoder; ldap3's strategies (sockets, threads) are not used."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._next_id = 0
        #: message id -> (Deferred of the last response, the search entries so far)
        self._pending: dict[int, tuple[defer.Deferred[Any], list[dict[str, Any]]]] = {}

    def send(self, kind: str, operation: Any, controls: Any = None) -> "defer.Deferred[Any]":
        """Send one request; the Deferred fires with (result dict, entries, controls)."""
        self._next_id += 1
        message = LDAPMessage()
        message["messageID"] = MessageID(self._next_id)
        message["protocolOp"] = ProtocolOp().setComponentByName(kind, operation)
        built = build_controls_list(controls)
        if built is not None:
            message["controls"] = built
        answered: defer.Deferred[Any] = defer.Deferred()
        self._pending[self._next_id] = (answered, [])
        self.transport.write(encode(message))  # type: ignore[union-attr]
        return answered

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > 2:
            length, offset = compute_ber_size(self._buffer[:10])
            if len(self._buffer) < length + offset:
                return
            message = decode_message_fast(bytes(self._buffer[: length + offset]))
            del self._buffer[: length + offset]
            self._received(message)

    def _received(self, message: dict[str, Any]) -> None:
        pending = self._pending.get(message["messageID"])
        if pending is None:
            return  # a notice of disconnection (id 0): the connection ends next
        answered, entries = pending
        kind = message["protocolOp"]
        if kind == 4:  # searchResEntry
            entries.append(
                search_result_entry_response_to_dict_fast(message["payload"], None, None, False)
            )
            return
        if kind == 19:  # searchResRef
            return
        result = (
            bind_response_to_dict_fast(message["payload"])
            if kind == 1
            else ldap_result_to_dict_fast(message["payload"])
        )
        del self._pending[message["messageID"]]
        answered.callback((result, entries, _controls(message["controls"])))

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        pending, self._pending = self._pending, {}
        for answered, _ in pending.values():
            answered.errback(reason)


def _controls(decoded: Any) -> dict[str, bytes | None]:
    """Response controls from ldap3's fast decoder, by OID, their values undecoded."""
    controls: dict[str, bytes | None] = {}
    for control in decoded or ():
        parts = control[3]
        value = next((part[3] for part in parts[1:] if part[2] == 4), None)
        controls[parts[0][3].decode()] = value
    return controls


class Ldap3Ber:
    name = "ldap3-ber"

    def __init__(
        self, request: Request, binders: list[Ldap3Protocol], searcher: Ldap3Protocol
    ) -> None:
        self._request = request
        self._binders = binders
        self._searcher = searcher
        self._controls = [(PPOLICY_OID, False, None)]

    @classmethod
    async def open(cls, reactor: Any, request: Request, binders: int) -> "Ldap3Ber":
        clients = [await _connect(reactor, request, Ldap3Protocol()) for _ in range(binders + 1)]
        searcher = clients.pop()
        bind = bind_operation(
            3, ldap3.SIMPLE, request.service_dn, request.service_password, auto_encode=True
        )
        result, _, _ = await searcher.send("bindRequest", bind)
        if result["result"] != _SUCCESS:
            raise RuntimeError(f"service bind refused: {result}")
        return cls(request, clients, searcher)

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        bind = bind_operation(3, ldap3.SIMPLE, user.dn, user.password.encode(), auto_encode=True)
        sent = self._binders[lane].send("bindRequest", bind, self._controls)
        return sent.addCallback(
            lambda answer: _bind_answer(answer[0]["result"], answer[2].get(PPOLICY_OID))
        )

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        request = self._request
        search = search_operation(
            request.root,
            request.filter_text(user.uid),
            ldap3.SUBTREE,
            ldap3.DEREF_NEVER,
            list(request.attributes),
            2,
            request.time_limit,
            False,
            True,  # auto_escape and auto_encode: ldap3 Connection's defaults
            True,
        )
        sent = self._searcher.send("searchRequest", search)
        return sent.addCallback(
            lambda answer: _search_answer(
                answer[0]["result"], [entry["dn"] for entry in answer[1]], user
            )
        )

    def close(self) -> None:
        for client in [*self._binders, self._searcher]:
            if client.transport is not None:
                client.transport.loseConnection()


# -- python-ldap: libldap's asynchronous calls polled from the reactor ----------------------


class _RawControl:
    """A response control kept as its encoded value (python-ldap would decode ppolicy with
    pyasn1, which the gateway does itself)."""

    def __init__(self) -> None:
        self.controlType = ""
        self.criticality = False
        self.encodedControlValue: bytes | None = None

    def decodeControlValue(self, value: bytes | None) -> None:
        self.encodedControlValue = value


class LibldapConnection:
    """One python-ldap connection, read by the reactor (an `IReadDescriptor`)."""

    def __init__(self, connection: Any) -> None:
        import ldap  # type: ignore[import-untyped]  # python-ldap: optional, no type information

        self._ldap = ldap
        self.connection = connection
        self._fileno = connection.fileno()
        self._pending: dict[int, defer.Deferred[Any]] = {}
        self._controls = {PPOLICY_OID: _RawControl}

    def submit(self, msgid: int) -> "defer.Deferred[Any]":
        answered: defer.Deferred[Any] = defer.Deferred()
        self._pending[msgid] = answered
        return answered

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "python-ldap"

    def doRead(self) -> None:
        ldap = self._ldap
        while self._pending:
            try:
                kind, data, msgid, controls = self.connection.result3(
                    ldap.RES_ANY, 1, 0, resp_ctrl_classes=self._controls
                )
            except ldap.LDAPError as exc:
                info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                answered = self._pending.pop(info.get("msgid"), None)
                if answered is None:
                    self.connectionLost(Failure(exc))
                    return
                answered.errback(exc)
                continue
            if kind is None:
                return  # nothing complete yet
            self._pending.pop(msgid).callback((kind, data, controls))

    def connectionLost(self, reason: Failure) -> None:
        pending, self._pending = self._pending, {}
        for answered in pending.values():
            answered.errback(reason)


class PythonLdap:
    name = "python-ldap"

    def __init__(
        self,
        reactor: Any,
        request: Request,
        binders: list[LibldapConnection],
        searcher: LibldapConnection,
    ) -> None:
        import ldap
        from ldap.controls import RequestControl  # type: ignore[import-untyped]

        self._ldap = ldap
        self._reactor = reactor
        self._request = request
        self._binders = binders
        self._searcher = searcher
        self._controls = [RequestControl(PPOLICY_OID, False, None)]
        for reader in [*binders, searcher]:
            reactor.addReader(reader)

    @classmethod
    def open(cls, reactor: Any, request: Request, binders: int) -> "PythonLdap":
        import ldap

        def connected(service: bool) -> LibldapConnection:
            connection = ldap.initialize(request.url)
            connection.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            if request.ca_file is not None:
                connection.set_option(ldap.OPT_X_TLS_CACERTFILE, str(request.ca_file))
                connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
                connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
            # The connection is opened by its first operation: an anonymous or service bind.
            if service:
                connection.simple_bind_s(request.service_dn, request.service_password)
            else:
                connection.simple_bind_s("", "")
            return LibldapConnection(connection)

        return cls(reactor, request, [connected(False) for _ in range(binders)], connected(True))

    def bind(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        binder = self._binders[lane]
        msgid = binder.connection.simple_bind(user.dn, user.password, serverctrls=self._controls)
        return binder.submit(msgid).addCallback(self._bound)

    def _bound(self, answer: tuple[Any, Any, Any]) -> Answer:
        # python-ldap raises for any result but success: reaching here is success.
        control = next((c for c in answer[2] if c.controlType == PPOLICY_OID), None)
        return _bind_answer(_SUCCESS, control.encodedControlValue if control else None)

    def search(self, lane: int, user: BenchUser) -> "defer.Deferred[Answer]":
        request = self._request
        msgid = self._searcher.connection.search_ext(
            request.root,
            self._ldap.SCOPE_SUBTREE,
            request.filter_text(user.uid),
            list(request.attributes),
            timeout=request.time_limit,
            sizelimit=2,
        )
        return self._searcher.submit(msgid).addCallback(
            lambda answer: _search_answer(_SUCCESS, [dn for dn, _ in answer[1]], user)
        )

    def close(self) -> None:
        for reader in [*self._binders, self._searcher]:
            self._reactor.removeReader(reader)
            with contextlib.suppress(self._ldap.LDAPError):
                reader.connection.unbind_s()


# -- the measurement -----------------------------------------------------------------------


@dataclass
class Round:
    ops: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    slapd_cpu_seconds: float | None = None
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[max(1, round(percent / 100 * len(ordered))) - 1] * 1000


@dataclass
class Case:
    client: str
    operation: str
    inflight: int
    rounds: list[Round] = field(default_factory=list)

    def median(self, value: Callable[[Round], float]) -> float:
        return statistics.median(value(r) for r in self.rounds)

    def summary(self) -> dict[str, Any]:
        slapd = [r.slapd_cpu_seconds / r.ops for r in self.rounds if r.slapd_cpu_seconds]
        return {
            "client": self.client,
            "operation": self.operation,
            "inflight": self.inflight,
            "cpu_us_per_op": round(self.median(lambda r: r.cpu_seconds / r.ops * 1e6), 1),
            "ops_per_second": round(self.median(lambda r: r.ops / r.wall_seconds), 1),
            "p50_ms": round(self.median(lambda r: r.percentile_ms(50)), 3),
            "p99_ms": round(self.median(lambda r: r.percentile_ms(99)), 3),
            "slapd_cpu_us_per_op": round(statistics.median(slapd) * 1e6, 1) if slapd else None,
            "rounds": [
                {
                    "ops": r.ops,
                    "cpu_us_per_op": round(r.cpu_seconds / r.ops * 1e6, 1),
                    "ops_per_second": round(r.ops / r.wall_seconds, 1),
                    "p50_ms": round(r.percentile_ms(50), 3),
                    "p99_ms": round(r.percentile_ms(99), 3),
                }
                for r in self.rounds
            ],
            "failures": dict(sum((r.failures for r in self.rounds), Counter())),
        }


Operation = Callable[[int, BenchUser], "defer.Deferred[Answer]"]


def drive(
    reactor: Any,
    operation: Operation,
    users: Iterator[BenchUser],
    inflight: int,
    slapd_pid: int | None,
) -> "defer.Deferred[Round]":
    """Run `operation` over `users` with `inflight` of them outstanding at any time, each lane
    starting its next as soon as its last is answered; fires with the round's figures."""
    finished: defer.Deferred[Round] = defer.Deferred()
    result = Round()
    lanes_left = inflight

    def start(lane: int) -> None:
        nonlocal lanes_left
        user = next(users, None)
        if user is None:
            lanes_left -= 1
            if lanes_left == 0:
                result.cpu_seconds = time.process_time() - cpu
                result.wall_seconds = time.perf_counter() - wall
                slapd_now = cpu_seconds(slapd_pid)
                if slapd_now is not None and slapd_cpu is not None:
                    result.slapd_cpu_seconds = slapd_now - slapd_cpu
                finished.callback(result)
            return
        began = time.perf_counter()
        try:
            answer = operation(lane, user)
        except Exception as exc:
            answer = defer.fail(exc)
        answer.addCallbacks(answered, failed, callbackArgs=(lane, began), errbackArgs=(lane, began))

    def answered(problem: Answer, lane: int, began: float) -> None:
        result.latencies.append(time.perf_counter() - began)
        result.ops += 1
        if problem is not None:
            result.failures[problem] += 1
        start(lane)

    def failed(reason: Failure, lane: int, began: float) -> None:
        result.latencies.append(time.perf_counter() - began)
        result.ops += 1
        result.failures[f"{reason.type.__name__}: {reason.value}"] += 1
        # Later: a failure may come at once, and recursing over thousands of them would not do.
        reactor.callLater(0, start, lane)

    slapd_cpu = cpu_seconds(slapd_pid)
    cpu, wall = time.process_time(), time.perf_counter()
    for lane in range(inflight):
        start(lane)
    return finished


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """Start slapd, load the users, measure every case on the reactor; print the table and
    write the JSON (unless `--no-save`)."""
    reactor = _asyncio_reactor()
    load_at_start = os.getloadavg()[0]
    if load_at_start > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start:.2f} before the start: other work shares"
            " the CPUs, so the rates will be low and noisy (CPU per operation less so)"
        )
    began = time.perf_counter()
    # debug 0: slapd writes no log line per operation (its CPU is not what is measured, but
    # it shares the two cores with this process).
    slapd = Slapd(seed_users=False, debug_level="0", tls=args.tls)
    outcome: dict[str, Any] = {}
    try:
        slapd.start()
        users = generate(args.users, slapd.people_dn)
        load_seconds = load(slapd, users)
        print(f"slapd {slapd.url}: {len(users):,} users loaded in {load_seconds:.1f} s")

        def stop(value: Any) -> None:
            outcome["value"] = value
            reactor.stop()

        async def main() -> list[Case]:
            return await _measure_all(reactor, slapd, users, args)

        reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(main()).addBoth(stop))
        reactor.run(installSignalHandlers=False)
    finally:
        slapd.close()
    value = outcome.get("value")
    if isinstance(value, Failure):
        value.raiseException()
    if not isinstance(value, list):
        print("the reactor stopped before the measurement ended")
        return Result(2)
    cases: list[Case] = value
    report = {
        "benchmark": "upstream",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            "users": args.users,
            "ops": args.ops,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "inflight": list(args.inflight),
            "clients": list(args.clients),
            "seed": args.seed,
            "tls": args.tls,
        },
        "environment": environment(_MEASURED, load_average_1m_at_start=round(load_at_start, 2)),
        "total_seconds": round(time.perf_counter() - began, 1),
        "cases": [case.summary() for case in cases],
    }
    _print_table(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"upstream-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results: {path}")
    failed = {
        f"{c['client']} {c['operation']} x{c['inflight']}": c["failures"]
        for c in report["cases"]
        if c["failures"]
    }
    if failed:
        print(f"FAILED operations (the figures above include them): {failed}")
        return Result(1, report)
    return Result(0, report)


def _asyncio_reactor() -> Any:
    """Twisted's asyncio reactor, as `gateway.runtime.main` runs the LDAP front on."""
    from twisted.internet import asyncioreactor, error

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        asyncioreactor.install(loop)
    except error.ReactorAlreadyInstalledError:
        print("warning: a reactor was installed already; measured on it, not on asyncio's")
    from twisted.internet import reactor

    return reactor


async def _measure_all(
    reactor: Any, slapd: Slapd, users: list[BenchUser], args: argparse.Namespace
) -> list[Case]:
    widest = max(args.inflight)
    config = gateway_config(slapd, "sqlite:///unused.db", 300, widest)
    if args.tls:
        config["sources"][0].update(urls=[slapd.ldaps_url], ca_file=str(slapd.ca_file))
    source = parse_config(config, {}).sources[0]
    assert isinstance(source, LdapSource)
    request = Request(
        host="127.0.0.1",
        port=slapd.ldaps_port if args.tls else slapd.port,
        service_dn=slapd.service_dn,
        service_password=slapd.service_password,
        root=source.roots[0],
        object_class=source.user_object_class,
        login_attribute=source.login_attribute,
        attributes=requested_attributes(source),
        time_limit=max(1, math.ceil(source.operation_timeout_seconds)),
        ca_file=slapd.ca_file if args.tls else None,
    )
    pool = ThreadPool(minthreads=0, maxthreads=widest, name="bench-upstream")
    pool.start()
    clients: list[Client] = []
    try:
        for name in args.clients:
            clients.append(await _open(name, reactor, pool, source, request, widest))
        cases = [
            Case(client.name, operation, inflight)
            for operation in OPERATIONS
            for inflight in args.inflight
            for client in clients
        ]
        by_name = {client.name: client for client in clients}
        rng = random.Random(args.seed)  # noqa: S311 - an order, not a secret
        for number in range(args.rounds):
            print(f"round {number + 1} of {args.rounds}")
            for case in cases:
                client = by_name[case.client]
                operation = client.bind if case.operation == "bind" else client.search
                if number == 0 and args.warmup:
                    await drive(
                        reactor, operation, _order(users, args.warmup, rng), case.inflight, None
                    )
                measured = await drive(
                    reactor, operation, _order(users, args.ops, rng), case.inflight, slapd.pid
                )
                case.rounds.append(measured)
                print(
                    f"  {case.client:<12}{case.operation:<7}x{case.inflight:<3}"
                    f"{measured.cpu_seconds / measured.ops * 1e6:8.0f} µs CPU/op"
                    f"{measured.ops / measured.wall_seconds:8.0f} ops/s"
                    f"  p50 {measured.percentile_ms(50):6.2f} ms"
                    f"  p99 {measured.percentile_ms(99):6.2f} ms"
                    + (f"  failures {dict(measured.failures)}" if measured.failures else "")
                )
    finally:
        for client in clients:
            client.close()
        pool.stop()
    return cases


def _order(users: list[BenchUser], count: int, rng: random.Random) -> Iterator[BenchUser]:
    """`count` users: every user once in a random order, over and over."""
    shuffled = users[:]
    rng.shuffle(shuffled)
    return itertools.islice(itertools.cycle(shuffled), count)


async def _open(
    name: str, reactor: Any, pool: ThreadPool, source: LdapSource, request: Request, binders: int
) -> Client:
    if name == "gateway":
        return GatewayDirectory(reactor, pool, source)
    if name == "ldap3":
        return Ldap3Threads(reactor, pool, request)
    if name == "ldaptor":
        return await Ldaptor.open(reactor, request, binders)
    if name == "ldap3-ber":
        return await Ldap3Ber.open(reactor, request, binders)
    return PythonLdap.open(reactor, request, binders)


def _print_table(report: dict[str, Any]) -> None:
    print()
    print(
        "| client | operation | in flight | CPU µs/op | ops/s | p50 ms | p99 ms | slapd CPU µs/op |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in report["cases"]:
        slapd = case["slapd_cpu_us_per_op"]
        print(
            f"| {case['client']} | {case['operation']} | {case['inflight']} |"
            f" {case['cpu_us_per_op']:,.0f} | {case['ops_per_second']:,.0f} |"
            f" {case['p50_ms']:.2f} | {case['p99_ms']:.2f} |"
            f" {'-' if slapd is None else f'{slapd:,.0f}'} |"
        )
    environment, parameters = report["environment"], report["parameters"]
    print(
        f"\nmedian of {parameters['rounds']} rounds of {parameters['ops']:,} operations;"
        f" {parameters['users']:,} users; {'ldaps' if parameters['tls'] else 'plain ldap'};"
        f" commit {environment['commit']}"
        f"{' + uncommitted changes' if environment['uncommitted_changes'] else ''};"
        f" {environment['cpus']} CPUs, load average {environment['load_average_1m_at_start']:.2f}"
        f" at start; total {report['total_seconds']:.0f} s"
    )
