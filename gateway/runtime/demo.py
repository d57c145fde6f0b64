"""The built-in demo: what `idgate serve` runs with no configuration (SPEC §8).

A small read-only directory (ldaptor's in-memory server, for the demo only) listens on a
loopback port in the gateway's own process, and the configuration points an `ldap` source at
it, so every bind goes the way it goes in production: a search and a bind upstream, and a
just-in-time sync. A newcomer can bind with `ldapwhoami` at once, then see a disabled and an
expired user refused.
"""

import asyncio
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ldaptor import interfaces
from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors, ldapserver
from twisted.internet import defer, protocol
from twisted.python import components

from gateway.auth.secrets import hash_secret
from gateway.config import Config, parse_config

SUFFIX = "dc=demo,dc=idgate"
PEOPLE = f"ou=people,{SUFFIX}"
DIRECTORY_ACCOUNT = f"cn=idgate,ou=services,{SUFFIX}"
#: The LDAP front's demo service account (what a RADIUS server would bind as).
SERVICE_ACCOUNT = "cn=radius,ou=services,dc=idgate"
#: Demo passwords: printed at start, valid only against this in-process directory.
DIRECTORY_PASSWORD = "demo-directory-secret"  # noqa: S105 - demo only, printed
SERVICE_PASSWORD = "radius-demo"  # noqa: S105 - demo only, printed
#: The demo's administrator token (admin view) and its SCIM source's token: printed at start.
ADMIN_TOKEN = "idgate-demo-admin-token"  # noqa: S105 - demo only, printed
SCIM_TOKEN = "idgate-demo-scim-token"  # noqa: S105 - demo only, printed
SCIM_SOURCE = "demo-scim"
GATEWAY_SCHEMA = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"


@dataclass(frozen=True)
class DemoUser:
    uid: str
    password: str
    name: str
    state: str
    extra: tuple[tuple[str, str], ...] = ()


USERS = (
    DemoUser("alice", "alice-demo", "Alice Demo", "active", (("mobile", "+15550100"),)),
    DemoUser("bob", "bob-demo", "Bob Demo", "disabled", (("employeeType", "disabled"),)),
    # shadowExpire is days since 1970-01-01: day 1 expired long ago.
    DemoUser("carol", "carol-demo", "Carol Demo", "expired", (("shadowExpire", "1"),)),
)


#: RFC 2696 Simple Paged Results, which a bulk sync sends as a critical control.
_PAGED_RESULTS = b"1.2.840.113556.1.4.319"


class _DemoServer(ldapserver.LDAPServer):  # type: ignore[misc]
    """ldaptor's server, taking Simple Paged Results (RFC 2696) so `idgate sync run demo`
    works: the demo's few entries always fit one page, which ends with an empty cookie."""

    def __init__(self) -> None:
        super().__init__()
        self._paged: set[int] = set()

    def handle(self, msg: Any) -> None:
        if any(control[0] == _PAGED_RESULTS for control in msg.controls or ()):
            self._paged.add(msg.id)
        super().handle(msg)

    def checkControls(self, controls: Any) -> None:
        others = [c for c in controls or () if c[0] != _PAGED_RESULTS]
        super().checkControls(others or None)

    def getRootDSE(self, request: Any, reply: Any) -> Any:
        # RFC 4512 §5.1: the RootDSE lists the controls the server supports.
        root = interfaces.IConnectedLDAPEntry(self.factory)
        reply(
            pureldap.LDAPSearchResultEntry(
                objectName="",
                attributes=[
                    ("supportedLDAPVersion", ["3"]),
                    ("namingContexts", [root.dn.getText()]),
                    ("supportedControl", [_PAGED_RESULTS.decode()]),
                ],
            )
        )
        return pureldap.LDAPSearchResultDone(resultCode=ldaperrors.Success.resultCode)

    def queue(self, id: int, op: Any) -> None:
        if isinstance(op, pureldap.LDAPSearchResultDone) and id in self._paged:
            self._paged.discard(id)
            done = pureber.BERSequence([pureber.BERInteger(0), pureber.BEROctetString(b"")])
            message = pureldap.LDAPMessage(
                op, id=id, controls=[(_PAGED_RESULTS, False, done.toWire())]
            )
            self.transport.write(message.toWire())
            return
        super().queue(id, op)


class _Factory(protocol.ServerFactory):
    protocol = _DemoServer

    def __init__(self, root: Any) -> None:
        self.root = root


_adapter_registered = False


def _register_adapter() -> None:
    # ldaptor's server finds its tree through this adapter (registered once per process).
    global _adapter_registered

    if not _adapter_registered:
        components.registerAdapter(  # type: ignore[no-untyped-call]
            lambda f: f.root, _Factory, interfaces.IConnectedLDAPEntry
        )
        _adapter_registered = True


def _tree() -> Any:
    # ldaptor.inmemory imports the global reactor: only after `serve` has installed its own.
    from ldaptor import inmemory

    root = inmemory.ReadOnlyInMemoryLDAPEntry(
        SUFFIX, {"objectClass": ["top", "domain"], "dc": ["demo"]}
    )
    services = root.addChild("ou=services", {"objectClass": ["organizationalUnit"]})
    services.addChild(
        "cn=idgate",
        {"objectClass": ["person"], "cn": ["idgate"], "sn": ["idgate"],
         "userPassword": [DIRECTORY_PASSWORD]},
    )  # fmt: skip
    people = root.addChild("ou=people", {"objectClass": ["organizationalUnit"]})
    for number, user in enumerate(USERS, start=1):
        attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
            "uid": [user.uid],
            "cn": [user.name],
            "sn": [user.name.split()[-1]],
            "givenName": [user.name.split()[0]],
            "mail": [f"{user.uid}@demo.idgate"],
            "userPassword": [user.password],
            "entryUUID": [f"00000000-0000-4000-8000-{number:012d}"],
        }
        for name, value in user.extra:
            attributes[name] = [value]
        people.addChild(f"uid={user.uid}", attributes)
    return root


class DemoDirectory:
    """The in-process demo directory; `listen` starts it on the reactor `serve` runs."""

    def __init__(self) -> None:
        # Bound and listening now, so the port is known before the configuration is built
        # and nothing else can take it before the reactor runs (a probed-then-released port
        # could be handed to another process meanwhile).
        self._socket: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(socket.SOMAXCONN)
        self._socket.setblocking(False)
        self.port = int(self._socket.getsockname()[1])
        self._listening: Any = None

    def listen(self, reactor: Any) -> None:
        _register_adapter()
        assert self._socket is not None, "the demo directory listens once"
        # The reactor watches a duplicate of the descriptor: ours can be closed at once.
        self._listening = reactor.adoptStreamPort(
            self._socket.fileno(), socket.AF_INET, _Factory(_tree())
        )
        self._socket.close()
        self._socket = None

    async def close(self) -> None:
        if self._socket is not None:  # never listened (the gateway did not start)
            self._socket.close()
            self._socket = None
        if self._listening is not None:
            stopped = defer.maybeDeferred(self._listening.stopListening)
            await stopped.asFuture(asyncio.get_running_loop())

    def config(self, environ: dict[str, str]) -> Config:
        """The demo configuration: SQLite ./idgate.db, one `ldap` source on this directory, one
        `scim` source, and a super admin for the admin view."""
        raw: dict[str, Any] = {
            "admins": [
                {"name": "demo", "role": "super_admin", "token_hash": hash_secret(ADMIN_TOKEN)}
            ],
            "ldap": {
                "service_accounts": [
                    {"dn": SERVICE_ACCOUNT, "password_hash": hash_secret(SERVICE_PASSWORD)}
                ],
            },
            "sources": [
                {
                    "id": "demo",
                    "kind": "ldap",
                    "urls": [f"ldap://127.0.0.1:{self.port}"],
                    "bind_dn": DIRECTORY_ACCOUNT,
                    "bind_password": DIRECTORY_PASSWORD,
                    "roots": [PEOPLE],
                    "attributes": {"sms_phone": "mobile"},
                    "status": {
                        "disabled_attribute": "employeeType",
                        "disabled_values": ["disabled"],
                        "expiration_attribute": "shadowExpire",
                        "expiration_format": "days",
                    },
                },
                {"id": SCIM_SOURCE, "kind": "scim", "token_hash": hash_secret(SCIM_TOKEN)},
            ],
        }
        return parse_config(raw, environ)


def banner(urls: list[str]) -> str:
    """What the demo prints once it listens: where, and the commands to try."""
    ldap_url = next((u for u in urls if u.startswith("ldap://")), None)
    http_url = next((u for u in urls if u.startswith("http://")), None)
    lines = ["", "idgate demo: no --config given, so a built-in demo directory is running.", ""]
    if ldap_url:
        lines += [
            f"  LDAP front   {ldap_url}",
            "  try:         ldapwhoami -x -H "
            f"{ldap_url} -D uid=alice,{PEOPLE} -w {USERS[0].password}",
            f"               ldapwhoami -x -H {ldap_url} -D bob -w {USERS[1].password}"
            "     (disabled: refused)",
            f"               ldapsearch -x -H {ldap_url} -D {SERVICE_ACCOUNT} -w {SERVICE_PASSWORD}"
            f" -b {PEOPLE} '(uid=alice)'",
        ]
    if http_url:
        disabled = quote(f'{GATEWAY_SCHEMA}:status eq "disabled"')
        user = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dave"}'
        lines += [
            f"  HTTP front   {http_url}  (try {http_url}/readyz, {http_url}/metrics)",
            "  admin view:  curl -s -H 'Authorization: Bearer "
            f"{ADMIN_TOKEN}' '{http_url}/scim/v2/Users?filter={disabled}'",
            "  provision:   curl -s -H 'Authorization: Bearer "
            f"{SCIM_TOKEN}' -H 'Content-Type: application/scim+json' -d '{user}'"
            f" {http_url}/scim/v2/sources/{SCIM_SOURCE}/Users",
        ]
    lines += ["", "  users: " + ", ".join(f"{u.uid} / {u.password} ({u.state})" for u in USERS), ""]
    return "\n".join(lines)
