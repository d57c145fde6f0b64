"""A service account's failures never refuse its right password (SPEC §6): the RADIUS
server's account is shared by every client, so its failures count per (account, client
address), and `allowed_networks` says where it may bind from at all.

Through the real front (`idgate serve --only ldap`, on SQLite and on PostgreSQL) with ldap3
clients bound to different loopback addresses (127.0.0.0/8 is all this machine's), and the
store and log it writes.
"""

from collections.abc import Iterator

import ldap3
import pytest
from sqlalchemy import select

from store.db import Store
from store.models import AuditEvent
from tests.gateway.realgw import slapd_source
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess, hashed
from tests.resilience.support import fresh_pg_schema
from tests.servers.slapd import Slapd
from tests.store_fixtures import PG_URL

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("service_accounts")

LIMIT = 3
OPEN_DN = "cn=sso,ou=services,dc=idgate"
OPEN_PASSWORD = "sso-agent-secret"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, slapd: Slapd) -> Iterator[GatewayProcess]:
    if request.param == "sqlite":
        yield from running(_gateway(slapd, None))
        return
    if PG_URL is None:
        pytest.skip("IDGATE_TEST_DATABASE_URL is not set: the PostgreSQL run not done")
    with fresh_pg_schema(PG_URL) as url:
        yield from running(_gateway(slapd, url))


def _gateway(slapd: Slapd, store_url: str | None) -> GatewayProcess:
    accounts = [
        {
            "dn": SERVICE_DN,
            "password_hash": hashed(SERVICE_PASSWORD),
            "allowed_networks": ["127.0.0.1", "127.0.0.2/32", "127.0.1.0/24"],
        },
        {"dn": OPEN_DN, "password_hash": hashed(OPEN_PASSWORD)},
    ]
    return GatewayProcess(
        [slapd_source([slapd.url])],
        ldap={"service_accounts": accounts},
        sync={"failed_auth_limit": LIMIT},
        store_url=store_url,
    )


def bind_from(gateway: GatewayProcess, address: str, dn: str, password: str) -> int:
    """One simple bind from the loopback `address`; its resultCode."""
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=gateway.port, connect_timeout=5),
        user=dn,
        password=password,
        source_address=address,
        receive_timeout=30,
    )
    try:
        conn.bind()
        return int(conn.result["result"])
    finally:
        conn.unbind()


def refusals(gateway: GatewayProcess) -> list[dict[str, object]]:
    store = Store.connect(gateway.store_url)
    try:
        with store.reading() as session:
            events = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "service_account.bind_refused")
                .order_by(AuditEvent.id)
            )
            return [dict(event.details) for event in events]
    finally:
        store.close()


def test_a_client_that_guesses_locks_out_only_its_own_address(gateway: GatewayProcess) -> None:
    guesses = [bind_from(gateway, "127.0.0.2", SERVICE_DN, "guess") for _ in range(LIMIT + 2)]
    assert guesses == [49] * (LIMIT + 2)

    # That address is refused now, even with the right password ...
    assert bind_from(gateway, "127.0.0.2", SERVICE_DN, SERVICE_PASSWORD) == 49
    # ... and every other address still binds, which is what keeps RADIUS running.
    assert bind_from(gateway, "127.0.0.1", SERVICE_DN, SERVICE_PASSWORD) == 0
    assert bind_from(gateway, "127.0.1.9", SERVICE_DN, SERVICE_PASSWORD) == 0

    audited = [r for r in refusals(gateway) if r["address"] == "127.0.0.2"]
    # Audited up to the limit, then only logged: a flood is no flood of writes.
    assert [r["reason"] for r in audited] == ["wrong_password"] * LIMIT
    assert [r.get("limit_reached", False) for r in audited] == [False] * (LIMIT - 1) + [True]
    assert all(r["account"] == SERVICE_DN for r in audited)

    logged = [
        r
        for r in gateway.log_records()
        if r.get("service") and str(r.get("peer", "")).startswith("127.0.0.2:")
    ]
    assert [r["result"] for r in logged] == ["wrong_password"] * LIMIT + ["rate_limited"] * 3
    assert SERVICE_PASSWORD not in gateway.log_text()


def test_outside_its_networks_the_right_password_is_refused(gateway: GatewayProcess) -> None:
    assert bind_from(gateway, "127.0.0.3", SERVICE_DN, SERVICE_PASSWORD) == 49
    assert bind_from(gateway, "127.0.2.1", SERVICE_DN, SERVICE_PASSWORD) == 49
    # An account without allowed_networks binds from anywhere.
    assert bind_from(gateway, "127.0.0.3", OPEN_DN, OPEN_PASSWORD) == 0

    outside = [r for r in refusals(gateway) if r["address"] in ("127.0.0.3", "127.0.2.1")]
    assert [(r["address"], r["reason"]) for r in outside] == [
        ("127.0.0.3", "network_not_allowed"),
        ("127.0.2.1", "network_not_allowed"),
    ]


def test_a_refusal_gives_the_same_answer_whatever_its_reason(gateway: GatewayProcess) -> None:
    answers = set()
    for address, password in [
        ("127.0.0.4", SERVICE_PASSWORD),  # outside the networks
        ("127.0.1.20", "wrong"),  # a wrong password
    ]:
        conn = ldap3.Connection(
            ldap3.Server("127.0.0.1", port=gateway.port, connect_timeout=5),
            user=SERVICE_DN,
            password=password,
            source_address=address,
        )
        try:
            conn.bind()
            answers.add((conn.result["result"], conn.result["description"], conn.result["message"]))
        finally:
            conn.unbind()
    assert answers == {(49, "invalidCredentials", "invalid credentials")}
