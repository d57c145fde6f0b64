"""The OpenLDAP command-line tools against the front (SPEC §6): `ldapwhoami` over plain LDAP,
StartTLS and LDAPS, and `ldapsearch` as a RADIUS server's service account would search."""

from pathlib import Path

from tests.ldapproxy.clients import (
    PEOPLE,
    add_person,
    ldap_tool,
    ldif_entries,
    service_search,
    stored_users,
    whoami,
)
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.slapd import Slapd

INVALID_CREDENTIALS = 49
SIZE_LIMIT_EXCEEDED = 4
UNWILLING_TO_PERFORM = 53


# -- ldapwhoami ---------------------------------------------------------------------------------


def test_whoami_by_dn_and_by_bare_name(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    alice = slapd.users["alice"]

    by_dn = whoami(corp_gateway.url, alice.dn, alice.password)
    by_name = whoami(corp_gateway.url, "alice", alice.password)

    assert (by_dn.returncode, by_dn.stdout.strip()) == (0, f"dn:{alice.dn}"), by_dn.stderr
    assert (by_name.returncode, by_name.stdout.strip()) == (0, f"dn:{alice.dn}"), by_name.stderr


def test_whoami_wrong_password_is_49(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    alice = slapd.users["alice"]

    result = whoami(corp_gateway.url, alice.dn, "not-" + alice.password)

    assert result.returncode == INVALID_CREDENTIALS, result
    assert "Invalid credentials (49)" in result.stderr
    assert "additional info: invalid credentials" in result.stderr


def test_whoami_empty_password_is_an_unauthenticated_bind_refused_before_slapd(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    alice = slapd.users["alice"]
    binds = slapd.count_binds(alice.dn)

    result = whoami(corp_gateway.url, alice.dn, "")

    assert result.returncode == UNWILLING_TO_PERFORM, result
    assert slapd.count_binds(alice.dn) == binds


def test_whoami_over_starttls(corp_gateway: GatewayProcess, slapd: Slapd, ca_file: Path) -> None:
    alice = slapd.users["alice"]

    result = whoami(corp_gateway.url, "alice", alice.password, "-ZZ", ca_file=ca_file)

    assert (result.returncode, result.stdout.strip()) == (0, f"dn:{alice.dn}"), result.stderr


def test_starttls_is_verified_against_the_ca(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    # Without the throwaway CA the certificate cannot verify: -ZZ must fail, not bind in clear.
    result = whoami(corp_gateway.url, "alice", slapd.users["alice"].password, "-ZZ")

    assert result.returncode != 0
    assert "dn:" not in result.stdout


def test_whoami_over_ldaps(corp_gateway: GatewayProcess, slapd: Slapd, ca_file: Path) -> None:
    alice = slapd.users["alice"]

    result = whoami(corp_gateway.ldaps_url, alice.dn, alice.password, ca_file=ca_file)
    wrong = whoami(corp_gateway.ldaps_url, alice.dn, "nope", ca_file=ca_file)

    assert (result.returncode, result.stdout.strip()) == (0, f"dn:{alice.dn}"), result.stderr
    assert wrong.returncode == INVALID_CREDENTIALS


# -- ldapsearch ---------------------------------------------------------------------------------


def _team(slapd: Slapd, size: int) -> tuple[str, list[str]]:
    """A new OU under ou=people with `size` users; their uids."""
    team = add_person(slapd, "team").uid  # a unique name; the OU takes it
    base = f"ou={team},{PEOPLE}"
    with slapd.admin_connection() as conn:
        assert conn.add(base, ["organizationalUnit"], {"ou": team}), conn.result
    uids = [add_person(slapd, "member", ou=f"{team},ou=people").uid for _ in range(size)]
    return base, uids


def test_paged_search_returns_every_user_under_the_base(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    base, uids = _team(slapd, 5)
    # The gateway serves the users it knows: an exact lookup makes each one known (SPEC §6).
    for uid in uids:
        found = ldif_entries(service_search(corp_gateway, PEOPLE, f"(uid={uid})", "uid").stdout)
        assert [e["uid"] for e in found] == [[uid]]

    paged = service_search(corp_gateway, base, "-E", "pr=2/noprompt", "(objectClass=inetOrgPerson)")

    assert paged.returncode == 0, paged.stderr
    entries = ldif_entries(paged.stdout)
    assert sorted(e["uid"][0] for e in entries) == sorted(uids)
    assert all(e["dn"][0].lower().endswith(base.lower()) for e in entries)


def test_paged_search_of_the_root_counts_every_stored_user(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    for uid in ("alice", "dave", "frank"):
        service_search(corp_gateway, PEOPLE, f"(uid={uid})", "1.1")
    stored = stored_users(corp_gateway, "corp")

    paged = service_search(
        corp_gateway, PEOPLE, "-E", "pr=2/noprompt", "(objectClass=inetOrgPerson)", "uid"
    )

    assert paged.returncode == 0, paged.stderr
    entries = ldif_entries(paged.stdout)
    dns = [e["dn"][0].lower() for e in entries]
    assert len(dns) == len(set(dns)) == len(stored) >= 3
    assert {"alice", "dave", "frank"} <= {e["uid"][0] for e in entries}
    assert {dn.lower() for dn in dns} == {(v.dn or "").lower() for v in stored}


def test_size_limit_is_exceeded_with_exit_code_4(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    for uid in ("alice", "frank"):
        service_search(corp_gateway, PEOPLE, f"(uid={uid})", "1.1")

    result = service_search(corp_gateway, PEOPLE, "-z", "1", "(objectClass=inetOrgPerson)", "uid")

    assert result.returncode == SIZE_LIMIT_EXCEEDED, result
    assert len(ldif_entries(result.stdout)) == 1


def test_attribute_selection(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    result = service_search(corp_gateway, PEOPLE, "(uid=alice)", "mail", "MOBILE")

    assert result.returncode == 0, result.stderr
    [entry] = ldif_entries(result.stdout)
    assert entry == {
        "dn": [slapd.users["alice"].dn],
        "mail": ["alice@example.org"],
        "mobile": ["+1 202 555 0101"],
    }


def test_operational_attributes_only_on_request(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    plain = ldif_entries(service_search(corp_gateway, PEOPLE, "(uid=alice)").stdout)
    everything = ldif_entries(service_search(corp_gateway, PEOPLE, "(uid=alice)", "*", "+").stdout)

    [user] = plain
    [full] = everything
    assert "entryuuid" not in user and "idgatestatus" not in user
    assert full["idgatestatus"] == ["active"]
    assert full["idgatesource"] == ["corp"]
    assert len(full["entryuuid"][0]) == 36  # the gateway's id of the record
    assert full["uid"] == ["alice"]


def test_user_password_never_appears(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    searches = [
        service_search(corp_gateway, PEOPLE, "(uid=alice)", "userPassword"),
        service_search(corp_gateway, PEOPLE, "(uid=alice)", "*", "+"),
        service_search(corp_gateway, PEOPLE, "(userPassword=*)"),
    ]

    for result in searches:
        assert result.returncode == 0, result.stderr
        assert "userpassword" not in result.stdout.lower()
        assert slapd.users["alice"].password not in result.stdout
    assert ldif_entries(searches[2].stdout) == []  # an attribute no entry has matches none


def test_anonymous_search_is_refused(corp_gateway: GatewayProcess) -> None:
    result = ldap_tool("ldapsearch", "-x", "-H", corp_gateway.url, "-b", PEOPLE, "(uid=alice)")

    assert result.returncode == 50, result


# -- size limits, as slapd applies them -----------------------------------------------------------


def test_size_limit_across_pages_is_exceeded_with_exit_code_4(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # RFC 4511 §4.5.1.4 with RFC 2696: the client's sizeLimit counts every page; reaching it
    # with entries left is sizeLimitExceeded, as slapd answers this very command.
    base, uids = _team(slapd, 5)
    for uid in uids:
        service_search(corp_gateway, PEOPLE, f"(uid={uid})", "1.1")

    result = service_search(
        corp_gateway, base, "-z", "3", "-E", "pr=2/noprompt", "(objectClass=inetOrgPerson)", "uid"
    )

    assert len(ldif_entries(result.stdout)) == 3
    assert result.returncode == SIZE_LIMIT_EXCEEDED, result


def test_size_limit_counts_container_entries_too(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # (objectClass=*) matches the ou=people container as well as the users: sizeLimit 1 is
    # one entry in all (RFC 4511 §4.5.1.4), as slapd returns for this very command.
    service_search(corp_gateway, PEOPLE, "(uid=alice)", "1.1")

    result = service_search(corp_gateway, PEOPLE, "-z", "1", "(objectClass=*)", "1.1")

    assert result.returncode == SIZE_LIMIT_EXCEEDED, result
    assert len(ldif_entries(result.stdout)) == 1, result.stdout
