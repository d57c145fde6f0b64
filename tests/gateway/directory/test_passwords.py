"""Directory.verify against slapd: a bind as the user, ppolicy decoded, nothing sent in vain."""

import re
import uuid
from collections.abc import Callable

import ldap3
import pytest

from gateway.directory import BindResult, Directory, NameKind
from tests.gateway.directory.conftest import ldap_source
from tests.reactor import blocking
from tests.servers.slapd import Slapd


def test_alice(slapd: Slapd, corp: Directory) -> None:
    alice = slapd.users["alice"]

    assert blocking(corp.verify, alice.dn, alice.password) is BindResult.OK


def test_wrong_password(slapd: Slapd, corp: Directory) -> None:
    assert blocking(corp.verify, slapd.users["alice"].dn, "wrong") is BindResult.INVALID_CREDENTIALS


def test_unknown_dn(slapd: Slapd, corp: Directory) -> None:
    dn = f"uid=nobody-{uuid.uuid4().hex[:8]},{slapd.people_dn}"
    binds = slapd.count_binds(dn)

    assert blocking(corp.verify, dn, "whatever") is BindResult.INVALID_CREDENTIALS
    assert slapd.count_binds(dn) == binds + 1


def test_bob_is_locked_and_looks_like_a_wrong_password(slapd: Slapd, corp: Directory) -> None:
    bob = slapd.users["bob"]

    assert blocking(corp.verify, bob.dn, bob.password) is BindResult.INVALID_CREDENTIALS


def test_dave_must_change_his_password(slapd: Slapd, corp: Directory) -> None:
    dave = slapd.users["dave"]

    assert blocking(corp.verify, dave.dn, dave.password) is BindResult.MUST_CHANGE_PASSWORD
    assert blocking(corp.verify, dave.dn, "wrong") is BindResult.INVALID_CREDENTIALS


def test_carol_binds_her_expiry_is_the_status_engines_job(slapd: Slapd, corp: Directory) -> None:
    carol = slapd.users["carol"]

    assert blocking(corp.verify, carol.dn, carol.password) is BindResult.OK


@pytest.mark.parametrize("password", ["", "\u00ad", "\u00ad\u034f\ufeff", "a\x07b"])
def test_passwords_that_would_be_unauthenticated_or_invalid_never_leave(
    slapd: Slapd, corp: Directory, password: str
) -> None:
    # "\u00ad" is mapped to nothing by SASLprep: sent, it would be an unauthenticated bind.
    alice = slapd.users["alice"]
    binds, connections = slapd.count_binds(), slapd.count_connections()

    assert blocking(corp.verify, alice.dn, password) is BindResult.INVALID_CREDENTIALS
    assert slapd.count_binds() == binds
    assert slapd.count_connections() == connections


@pytest.mark.parametrize(
    "dn",
    [
        "cn=idgate,ou=services,dc=example,dc=org",
        "cn=admin,dc=example,dc=org",
        "uid=erin,ou=contractors,dc=example,dc=org",
        "",
        "not a dn",
    ],
)
def test_dns_outside_the_roots_are_never_bound(slapd: Slapd, corp: Directory, dn: str) -> None:
    binds = slapd.count_binds()

    assert blocking(corp.verify, dn, "idgate-secret") is BindResult.INVALID_CREDENTIALS
    assert blocking(corp.verify, dn, "admin-secret") is BindResult.INVALID_CREDENTIALS
    assert slapd.count_binds() == binds


def test_a_non_ascii_password(slapd: Slapd, corp: Directory) -> None:
    uid = f"p-{uuid.uuid4().hex[:8]}"
    dn = slapd.add_user(uid, userPassword="Grüße-😀")

    assert blocking(corp.verify, dn, "Grüße-😀") is BindResult.OK
    assert blocking(corp.verify, dn, "Grusse-😀") is BindResult.INVALID_CREDENTIALS


# slapd -d stats: `conn=1003 op=0 BIND dn="..." method=128` and `conn=1003 op=1 SRCH ...`
_LINE = re.compile(r'\bconn=(\d+) op=\d+ (BIND dn="([^"]*)"|SRCH base="[^"]*" .*filter="([^"]*)")')


def binder_of_search(log: str, marker: str) -> str:
    """Who the connection that ran the search containing `marker` was bound as."""
    bound: dict[str, str] = {}
    for conn, _, dn, search_filter in _LINE.findall(log):
        if dn or not search_filter:
            bound[conn] = dn.lower()
        elif marker in search_filter:
            return bound.get(conn, "")
    raise AssertionError(f"no search with {marker}")


def test_user_binds_never_touch_the_service_connections(slapd: Slapd, corp: Directory) -> None:
    alice = slapd.users["alice"]
    first, second = (f"n-{uuid.uuid4().hex[:8]}" for _ in range(2))

    corp.find_user(NameKind.LOGIN, first)
    assert blocking(corp.verify, alice.dn, alice.password) is BindResult.OK
    corp.find_user(NameKind.LOGIN, second)

    log = slapd.log_text()
    assert binder_of_search(log, first) == slapd.service_dn
    assert binder_of_search(log, second) == slapd.service_dn


def test_bind_connections_are_reused(slapd: Slapd, corp: Directory) -> None:
    alice = slapd.users["alice"]
    blocking(corp.verify, alice.dn, alice.password)
    connections = slapd.count_connections()

    for _ in range(5):
        assert blocking(corp.verify, alice.dn, alice.password) is BindResult.OK
        assert blocking(corp.verify, alice.dn, "wrong") is BindResult.INVALID_CREDENTIALS

    assert slapd.count_connections() == connections


# -- password policy states on servers of their own ------------------------------------


def set_policy(server: Slapd, **values: str) -> None:
    with server.admin_connection() as conn:
        conn.modify(server.policy_dn, {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in values.items()})
        assert conn.result["result"] == 0, conn.result


#: The Relax Rules control (draft-zeilenga-ldap-relax): lets the rootDN set pwdChangedTime,
#: which ppolicy otherwise keeps to itself (NO-USER-MODIFICATION).
RELAX_RULES = ("1.3.6.1.4.1.4203.666.5.12", True, None)


def age_password(server: Slapd, dn: str) -> None:
    """Date the password's last change back to 2000, past any pwdMaxAge: slapd's own view
    of its age, instead of sleeping until the clock makes it old."""
    with server.admin_connection() as conn:
        conn.modify(
            dn,
            {"pwdChangedTime": [(ldap3.MODIFY_REPLACE, ["20000101000000Z"])]},
            controls=[RELAX_RULES],
        )
        assert conn.result["result"] == 0, conn.result


def test_locked_account_with_use_lockout(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory()
    with server.config_connection() as conn:
        conn.modify(
            "olcOverlay={1}ppolicy,olcDatabase={1}mdb,cn=config",
            {"olcPPolicyUseLockout": [(ldap3.MODIFY_REPLACE, ["TRUE"])]},
        )
    bob = server.users["bob"]

    directory = connect(ldap_source([server.url]))

    assert blocking(directory.verify, bob.dn, bob.password) is BindResult.ACCOUNT_LOCKED


def test_expired_password_with_grace_logins(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory(seed_users=False)
    set_policy(server, pwdMaxAge="1", pwdGraceAuthNLimit="2")
    dn = server.add_user("old", userPassword="old-secret")
    age_password(server, dn)
    directory = connect(ldap_source([server.url]))

    # slapd accepts the bind as a grace login; it is still not an authentication.
    assert blocking(directory.verify, dn, "old-secret") is BindResult.PASSWORD_EXPIRED
    assert blocking(directory.verify, dn, "wrong") is BindResult.INVALID_CREDENTIALS


def test_expired_password_without_grace_logins(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Directory]
) -> None:
    server = slapd_factory(seed_users=False)
    set_policy(server, pwdMaxAge="1")
    dn = server.add_user("old", userPassword="old-secret")
    age_password(server, dn)
    directory = connect(ldap_source([server.url]))

    assert blocking(directory.verify, dn, "old-secret") is BindResult.PASSWORD_EXPIRED
