"""Binds that must never succeed, through a real `idgate serve` in front of a real slapd.

- An empty password is an unauthenticated bind (RFC 4513 §5.1.2): refused (unwillingToPerform)
  for every name form and every kind of source, and never forwarded to slapd as a bind.
- An anonymous bind (empty name and password, RFC 4513 §5.1.1) succeeds as anonymous and
  nothing more: it reaches no directory, and the connection may not search (SPEC §6).
- SASL binds are refused with authMethodNotSupported (RFC 4511 §4.2.2), for every mechanism.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.admin_gateway import SUPER_TOKEN
from tests.gateway.realgw import slapd_source, unique
from tests.ldapproxy import ber
from tests.ldapproxy.clients import PEOPLE, Person, add_person
from tests.ldapproxy.conftest import running
from tests.resilience.support import FullGateway, scim_client, scim_source
from tests.servers.slapd import Slapd

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("bind_refusals")

SUCCESS = 0
AUTH_METHOD_NOT_SUPPORTED = 7
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
UNWILLING_TO_PERFORM = 53
SCIM_SOURCE = "hr"
SCIM_TOKEN = "bind-refusals-scim-token-0123456789"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture(scope="module")
def gateway(slapd: Slapd) -> Iterator[FullGateway]:
    process = FullGateway(
        [slapd_source([slapd.url]), scim_source(SCIM_SOURCE, SCIM_TOKEN)],
        sync={"jit_interval_seconds": 300, "failed_auth_limit": 1000},
    )
    yield from running(process)


@pytest.fixture(scope="module")
def ldap_user(slapd: Slapd, gateway: FullGateway) -> Person:
    """A directory user the store knows (one good bind synced it)."""
    person = add_person(slapd, "refusals")
    with ber.Client(gateway.port) as client:
        client.send(ber.message(1, ber.bind_request(person.dn, person.password)))
        assert client.read().code == SUCCESS
    return person


@pytest.fixture(scope="module")
def scim_user(gateway: FullGateway) -> tuple[str, str]:
    """(userName, password) of a SCIM-provisioned user with a stored argon2 hash."""
    name, password = unique("scimbind"), f"{unique('pw')}-Secret1"
    with scim_client(gateway, SCIM_SOURCE, SCIM_TOKEN) as client:
        created = client.post(
            "/Users", json={"schemas": [USER], "userName": name, "password": password}
        )
    assert created.status_code == 201, created.text
    return name, password


def bind(port: int, name: str, password: str) -> ber.Answer:
    with ber.Client(port) as client:
        client.send(ber.message(1, ber.bind_request(name, password)))
        answer = client.read()
    assert answer is not None and answer.op == ber.BIND_RESPONSE, answer
    return answer


def names_of(ldap_user: Person, scim_user: tuple[str, str]) -> list[str]:
    scim_name = scim_user[0]
    return [
        ldap_user.dn,
        ldap_user.uid,
        ldap_user.uid.upper(),
        f"{ldap_user.uid}@example.org",  # UPN form (no AD source: a bare name here)
        f"EXAMPLE\\{ldap_user.uid}",  # DOMAIN\user with no AD source: no subject at all
        f"uid={scim_name},ou={SCIM_SOURCE},dc=idgate",
        scim_name,
        "cn=radius,ou=services,dc=idgate",
        f"uid={unique('nobody')},{PEOPLE}",
    ]


def test_good_binds_work_for_both_kinds(
    gateway: FullGateway, ldap_user: Person, scim_user: tuple[str, str]
) -> None:
    # The refusals below mean something only if the same names bind with their password.
    assert bind(gateway.port, ldap_user.uid, ldap_user.password).code == SUCCESS
    assert bind(gateway.port, scim_user[0], scim_user[1]).code == SUCCESS
    scim_dn = f"uid={scim_user[0]},ou={SCIM_SOURCE},dc=idgate"
    assert bind(gateway.port, scim_dn, scim_user[1]).code == SUCCESS


def test_empty_password_never_binds_nor_reaches_slapd(
    gateway: FullGateway, slapd: Slapd, ldap_user: Person, scim_user: tuple[str, str]
) -> None:
    binds, searches = slapd.count_binds(), slapd.count_operations("SRCH")
    for name in names_of(ldap_user, scim_user):
        answer = bind(gateway.port, name, "")
        assert (answer.code, answer.diagnostic) == (
            UNWILLING_TO_PERFORM,
            "unauthenticated bind (name without password) refused",
        ), name
    assert (slapd.count_binds(), slapd.count_operations("SRCH")) == (binds, searches)


def test_anonymous_bind_is_anonymous_and_reaches_no_directory(
    gateway: FullGateway, slapd: Slapd
) -> None:
    binds = slapd.count_binds()
    with ber.Client(gateway.port) as client:
        client.send(ber.message(1, ber.bind_request("", "")))
        bound = client.read()
        client.send(ber.message(2, ber.extended_request("1.3.6.1.4.1.4203.1.11.3")))
        who = client.read()
        client.send(ber.message(3, ber.search_request(PEOPLE)))
        searched = client.read()
    assert bound.code == SUCCESS
    assert (who.code, who.element(0x8B)) == (SUCCESS, b"")  # RFC 4532: anonymous is ""
    assert (searched.op, searched.code) == (ber.SEARCH_RESULT_DONE, INSUFFICIENT_ACCESS_RIGHTS)
    assert slapd.count_binds() == binds


@pytest.mark.parametrize("mechanism", ["PLAIN", "EXTERNAL", "GSSAPI", "DIGEST-MD5", "ANONYMOUS"])
def test_sasl_binds_are_refused(
    gateway: FullGateway, slapd: Slapd, ldap_user: Person, mechanism: str
) -> None:
    binds = slapd.count_binds()
    credentials = f"\0{ldap_user.uid}\0{ldap_user.password}".encode()
    with ber.Client(gateway.port) as client:
        client.send(ber.message(1, ber.sasl_bind_request(ldap_user.dn, mechanism, credentials)))
        answer = client.read()
        client.send(ber.message(2, ber.extended_request("1.3.6.1.4.1.4203.1.11.3")))
        who = client.read()
    assert (answer.op, answer.code) == (ber.BIND_RESPONSE, AUTH_METHOD_NOT_SUPPORTED)
    assert who.element(0x8B) == b""  # still anonymous
    assert slapd.count_binds() == binds


def test_tokens_open_only_their_own_source(gateway: FullGateway) -> None:
    """A source's token on another source's URL, an admin token on a source, a source token
    on /admin: 401 on every resource path and method, and nothing written (SPEC §7)."""
    paths = ["/Users", "/Users/x", "/Groups", "/Groups/x", "/Users/.search", "/Bulk", "/Me"]
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    with httpx.Client(base_url=gateway.http_url, timeout=30) as http:
        before = http.get(f"/scim/v2/sources/{SCIM_SOURCE}/Users", headers=auth(SCIM_TOKEN)).json()[
            "totalResults"
        ]
        for token in (SUPER_TOKEN, "corp-is-not-scim", SCIM_TOKEN + "x"):
            for path in paths:
                for method in methods:
                    response = http.request(
                        method,
                        f"/scim/v2/sources/{SCIM_SOURCE}{path}",
                        headers={**auth(token), "Content-Type": "application/scim+json"},
                        json={"schemas": [USER], "userName": unique("intruder")},
                    )
                    # A method no route has may be answered 405 before the token is looked
                    # at (it says nothing about the source); every route is 401.
                    expected = (401,) if (method, path) in ROUTES else (401, 404, 405)
                    assert response.status_code in expected, (token[:8], method, path)
                    assert response.json()["status"] == str(response.status_code)
        # The ldap source serves no SCIM at all, whatever the token.
        corp = http.get("/scim/v2/sources/corp/Users", headers=auth(SCIM_TOKEN))
        assert corp.status_code == 404
        for method in methods:
            admin = http.request(method, "/admin/users", headers=auth(SCIM_TOKEN))
            assert admin.status_code in ((401,) if method == "GET" else (401, 405)), method
        after = http.get(f"/scim/v2/sources/{SCIM_SOURCE}/Users", headers=auth(SCIM_TOKEN)).json()[
            "totalResults"
        ]
    assert after == before


ROUTES = {
    *(("GET", p) for p in ("/Users", "/Groups", "/Users/x", "/Groups/x")),
    *(("POST", p) for p in ("/Users", "/Groups", "/Users/.search")),
    *((m, p) for m in ("PUT", "PATCH", "DELETE") for p in ("/Users/x", "/Groups/x")),
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
