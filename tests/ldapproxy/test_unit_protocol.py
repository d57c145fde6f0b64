"""The LDAP front's protocol in-process, without sockets (ldaptor/Twisted `StringTransport`),
over the real store: what each operation answers, byte for byte as a client decodes it.

Real clients and real upstream servers are in the other modules of this package.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ldaptor.protocols import pureber, pureldap
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from gateway.auth.binds import AuthOutcome, AuthReason
from gateway.auth.ratelimit import FailureLimiter
from gateway.auth.secrets import hash_secret
from gateway.auth.service_accounts import ServiceAccounts
from gateway.config import parse_config
from gateway.engine.plan import Email, SourceUser
from gateway.engine.types import SourceStatus, Trigger
from gateway.users.service import UserService
from gateway.users.tree import DirectoryTree
from ldapproxy import wire
from ldapproxy.server import Connection, Services
from store.db import Store
from store.users import ensure_sources

ROOT = "ou=people,dc=example,dc=org"
SERVICE_DN = "cn=radius,ou=services,dc=idgate"
SERVICE_PASSWORD = "radius-secret"
_HASH = hash_secret(SERVICE_PASSWORD)


class Recorder:
    def __init__(self) -> None:
        self.binds: list[str] = []

    def bind(self, outcome: str) -> None:
        self.binds.append(outcome)

    def search(self, result: str) -> None:
        pass


def _config(**ldap: Any) -> Any:
    return parse_config(
        {
            "ldap": {
                "service_accounts": [{"dn": SERVICE_DN, "password_hash": _HASH}],
                "size_limit": 3,
                **ldap,
            },
            "sources": [
                {
                    "id": "corp",
                    "kind": "ldap",
                    "urls": ["ldap://127.0.0.1:1"],
                    "bind_dn": "cn=idgate,dc=example,dc=org",
                    "bind_password": "x",
                    "roots": [ROOT],
                    "attributes": {"sms_phone": "mobile", "policy": ["employeeType"]},
                },
                {"id": "people", "kind": "scim", "token_hash": _HASH},
            ],
        },
        {},
    )


class Harness:
    """One connection over a StringTransport; operations run synchronously."""

    def __init__(self, store: Store, **ldap: Any) -> None:
        self.config = _config(**ldap)
        self.outcomes: dict[tuple[str, str], AuthOutcome] = {}
        self.included: list[tuple[str, str]] = []
        self.recorder = Recorder()
        self.services = Services(
            config=self.config,
            authenticate=self._authenticate,
            route=lambda name: [] if name.startswith("nowhere") else [name],
            accounts=ServiceAccounts(
                self.config.ldap.service_accounts,
                FailureLimiter(store, 5, 60, clock=lambda: datetime.now(UTC)),
                clock=lambda: datetime.now(UTC),
            ),
            tree=DirectoryTree(self.config, store),
            include=lambda source, name: self.included.append((source, name)),
            change_password=lambda *args: None,
            run=lambda call, *args: defer.maybeDeferred(call, *args),
            recorder=self.recorder,
        )
        self.transport = StringTransport()
        self.connection = Connection(self.services, tls=False, max_message_bytes=65536)
        self.connection.makeConnection(self.transport)
        self._next = 1

    def _authenticate(
        self, name: str, password: str, route: object = None
    ) -> "defer.Deferred[AuthOutcome]":
        refused = AuthOutcome(AuthReason.INVALID_CREDENTIALS)
        return defer.succeed(self.outcomes.get((name, password), refused))

    def send(self, op: Any, controls: list[Any] | None = None) -> list[Any]:
        message_id = self._next
        self._next += 1
        self.connection.dataReceived(wire.encode(message_id, op, controls))
        return self.responses()

    def responses(self) -> list[Any]:
        data = self.transport.value()
        self.transport.clear()
        decoded = []
        decoder = pureldap.LDAPBERDecoderContext_TopLevel(
            inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
                fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
                inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
            )
        )
        while data:
            message, used = pureber.berDecodeObject(decoder, data)
            decoded.append(message)
            data = data[used:]
        return decoded

    def bind(self, dn: str, password: str) -> Any:
        (response,) = self.send(pureldap.LDAPBindRequest(dn=dn, auth=password))
        return response.value

    def search(self, base: str, text: str, *, scope: int = 2, **kw: Any) -> list[Any]:
        from ldaptor import ldapfilter

        request = pureldap.LDAPSearchRequest(
            baseObject=base, scope=scope, filter=ldapfilter.parseFilter(text), **kw
        )
        return [m.value for m in self.send(request)]


@pytest.fixture
def harness(store: Store) -> Iterator[Callable[..., Harness]]:
    yield lambda **ldap: Harness(store, **ldap)


def _seed(store: Store, count: int = 5) -> None:
    with store.writing() as session:
        ensure_sources(session, [("corp", "ldap"), ("people", "scim")], datetime.now(UTC))
    users = UserService()
    with store.writing() as session:
        for i in range(count):
            users.apply_report(
                session,
                "corp",
                SourceUser(
                    external_id=f"id-{i}",
                    user_name=f"user{i}",
                    status=SourceStatus.ENABLED,
                    dn=f"uid=user{i},{ROOT}",
                    display_name=f"User {i}",
                    emails=(Email(f"user{i}@example.org"),),
                    policy=(("employeeType", (f"type{i % 2}",)),),
                    sms_phones=(f"+1555000{i}",),
                ),
                Trigger.SINGLE,
            )


def _names(responses: list[Any]) -> list[str]:
    return [
        r.objectName.decode() if isinstance(r.objectName, bytes) else r.objectName
        for r in responses
        if isinstance(r, pureldap.LDAPSearchResultEntry)
    ]


def test_anonymous_bind_succeeds_and_may_read_only_the_root_dse(harness: Any) -> None:
    h = harness()
    assert h.bind("", "").resultCode == 0
    root = h.search("", "(objectClass=*)", scope=0)
    assert root[-1].resultCode == 0
    attributes = dict(root[0].attributes)
    assert b"1.3.6.1.4.1.4203.1.11.3" in attributes[b"supportedExtension"]
    assert ROOT.encode() in attributes[b"namingContexts"]
    assert h.search(ROOT, "(uid=*)")[-1].resultCode == 50


def test_a_dn_without_password_is_refused_and_never_authenticated(harness: Any) -> None:
    h = harness()
    h.outcomes[("uid=user1," + ROOT, "")] = AuthOutcome(AuthReason.SUCCESS)
    assert h.bind("uid=user1," + ROOT, "").resultCode == 53  # RFC 4513 §5.1.2
    assert h.recorder.binds == ["unauthenticated_refused"]


def test_sasl_binds_are_not_supported(harness: Any) -> None:
    h = harness()
    request = pureldap.LDAPBindRequest(dn="", auth=(b"PLAIN", b"\0u\0p"), sasl=True)
    (response,) = h.send(request)
    assert response.value.resultCode == 7


def test_bind_outcomes_say_why_only_after_the_password_was_verified(harness: Any) -> None:
    h = harness()
    dn = f"uid=user1,{ROOT}"
    h.outcomes[(dn, "right")] = AuthOutcome(AuthReason.ACCOUNT_DISABLED, password_verified=True)
    h.outcomes[(dn, "wrong")] = AuthOutcome(AuthReason.ACCOUNT_DISABLED)
    h.outcomes[(dn, "down")] = AuthOutcome(AuthReason.DIRECTORY_UNAVAILABLE)
    verified = h.bind(dn, "right")
    assert (verified.resultCode, verified.errorMessage) == (49, b"account disabled")
    unverified = h.bind(dn, "wrong")
    assert (unverified.resultCode, unverified.errorMessage) == (49, b"invalid credentials")
    assert h.bind(dn, "down").resultCode == 52


def test_a_paced_refusal_waits_on_a_timer_of_the_loop(harness: Any) -> None:
    """SPEC §6, the same answer in the same time: the wait the pacer asks for is a timer of
    the event loop (`Services.delay`), so a refusal being paced holds no thread."""
    from twisted.internet.task import Clock, deferLater

    h = harness()
    clock = Clock()
    h.services.delay = lambda seconds: deferLater(clock, seconds)
    dn = "uid=user1," + ROOT
    h.outcomes[(dn, "wrong")] = AuthOutcome(AuthReason.INVALID_CREDENTIALS, answer_after=0.25)
    h.connection.dataReceived(wire.encode(1, pureldap.LDAPBindRequest(dn=dn, auth="wrong")))
    assert h.responses() == []  # held: the refusal is not sent yet
    clock.advance(0.2)
    assert h.responses() == []
    clock.advance(0.05)
    (answer,) = h.responses()
    assert answer.value.resultCode == 49
    h.outcomes[(dn, "right")] = AuthOutcome(AuthReason.SUCCESS, password_verified=True)
    assert h.bind(dn, "right").resultCode == 0  # nothing to pace: answered at once


def test_who_am_i_follows_each_bind_on_one_connection(harness: Any) -> None:
    h = harness()
    dn = f"uid=user1,{ROOT}"
    h.outcomes[("user1", "pw")] = AuthOutcome(AuthReason.SUCCESS, True, "x", "corp", dn)

    def whoami() -> bytes:
        (response,) = h.send(pureldap.LDAPExtendedRequest(requestName=b"1.3.6.1.4.1.4203.1.11.3"))
        return bytes(response.value.response or b"")

    assert h.bind("user1", "pw").resultCode == 0
    assert whoami() == f"dn:{dn}".encode()
    assert h.bind(SERVICE_DN, SERVICE_PASSWORD).resultCode == 0
    assert whoami() == f"dn:{SERVICE_DN}".encode()
    assert h.bind(SERVICE_DN, "wrong").resultCode == 49
    assert whoami() == b""  # RFC 4511 §4.2.1: a failed bind leaves the connection anonymous


def test_writes_and_compare_are_refused(harness: Any) -> None:
    h = harness()
    h.bind(SERVICE_DN, SERVICE_PASSWORD)
    dn = f"uid=user1,{ROOT}"
    requests = [
        pureldap.LDAPDelRequest(entry=dn),
        pureldap.LDAPAddRequest(entry=dn, attributes=[]),
        pureldap.LDAPModifyDNRequest(entry=dn, newrdn="uid=x", deleteoldrdn=True),
        pureldap.LDAPCompareRequest(
            entry=dn,
            ava=pureldap.LDAPAttributeValueAssertion(
                pureber.BEROctetString("uid"), pureber.BEROctetString("user1")
            ),
        ),
    ]
    for request in requests:
        (response,) = h.send(request)
        assert response.value.resultCode == 50


def test_unknown_extended_operation_and_critical_control(harness: Any) -> None:
    h = harness()
    (response,) = h.send(pureldap.LDAPExtendedRequest(requestName=b"1.2.3.4"))
    assert response.value.resultCode == 2
    (response,) = h.send(
        pureldap.LDAPExtendedRequest(requestName=b"1.3.6.1.4.1.4203.1.11.3"),
        controls=[(b"1.2.3.4.5", True, None)],
    )
    assert response.value.resultCode == 12


def test_password_modify_needs_tls(harness: Any) -> None:
    h = harness()
    (response,) = h.send(pureldap.LDAPExtendedRequest(requestName=b"1.3.6.1.4.1.4203.1.11.1"))
    assert response.value.resultCode == 13


@pytest.mark.parametrize(
    "data",
    [b"\x01\x02\x03garbage", b"\x30\x84\x10\x00\x00\x00", b"\x30\x03\x02\x01\x00"],
    ids=["not-a-sequence", "oversized", "message-id-0-without-op"],
)
def test_undecodable_input_ends_with_a_notice_of_disconnection(harness: Any, data: bytes) -> None:
    h = harness()
    h.connection.dataReceived(data)
    (notice,) = h.responses()
    assert notice.id == 0
    assert notice.value.resultCode == 2
    assert notice.value.responseName == wire.NOTICE_OF_DISCONNECTION
    assert h.transport.disconnecting


def test_the_bind_request_never_shows_its_password() -> None:
    frame = wire.encode(1, pureldap.LDAPBindRequest(dn="uid=a", auth="canary-pw"))
    assert "canary-pw" not in repr(wire.decode(frame).op)


def test_service_account_searches_with_filters_scopes_and_limits(
    store: Store, harness: Any
) -> None:
    _seed(store)
    h = harness()
    assert h.bind(SERVICE_DN, SERVICE_PASSWORD).resultCode == 0
    found = h.search(ROOT, "(&(objectClass=inetOrgPerson)(uid=USER2))")
    assert _names(found) == [f"uid=user2,{ROOT}"]
    assert found[-1].resultCode == 0
    entry = dict(found[0].attributes)
    assert entry[b"mobile"] == [b"+15550002"]
    assert entry[b"employeeType"] == [b"type0"]
    assert b"userPassword" not in entry and b"entryUUID" not in entry
    # Size limit of 3 from the config: more matches -> sizeLimitExceeded with 3 entries.
    many = h.search(ROOT, "(uid=user*)")
    assert len(_names(many)) == 3 and many[-1].resultCode == 4
    # Three-valued logic: an unknown attribute is Undefined, and so is its negation.
    assert _names(h.search(ROOT, "(!(noSuchAttribute=1))")) == []
    assert len(_names(h.search(ROOT, "(&(employeeType=type1)(mail=*@example.org))"))) == 2
    # Base scope on a user, on a container, on nothing.
    assert _names(h.search(f"uid=user3,{ROOT}", "(objectClass=*)", scope=0)) == [
        f"uid=user3,{ROOT}"
    ]
    assert h.search(f"uid=nobody,{ROOT}", "(objectClass=*)", scope=0)[-1].resultCode == 32
    assert _names(h.search(ROOT, "(objectClass=*)", scope=0)) == [ROOT]
    assert h.search("not a dn", "(objectClass=*)")[-1].resultCode == 34
    # An equality on the login name that finds nobody asks the directory for exactly it.
    assert _names(h.search(ROOT, "(uid=newcomer)")) == []
    assert h.included == [("corp", "newcomer")]


def test_paged_results_walk_every_entry_once(store: Store, harness: Any) -> None:
    _seed(store, count=7)
    h = harness(size_limit=100)
    h.bind(SERVICE_DN, SERVICE_PASSWORD)
    from ldaptor import ldapfilter

    cookie = b""
    seen: list[str] = []
    for _ in range(10):
        value = pureber.BERSequence([pureber.BERInteger(3), pureber.BEROctetString(cookie)])
        request = pureldap.LDAPSearchRequest(
            baseObject=ROOT, filter=ldapfilter.parseFilter("(uid=*)")
        )
        messages = h.send(request, controls=[(wire.PAGED_RESULTS, True, value.toWire())])
        seen += _names([m.value for m in messages])
        done = messages[-1]
        assert done.value.resultCode == 0
        ((oid, _, control),) = done.controls
        assert oid == wire.PAGED_RESULTS
        cookie = wire.decode_page_request(control).cookie
        if not cookie:
            break
    assert sorted(seen) == sorted(f"uid=user{i},{ROOT}" for i in range(7))
