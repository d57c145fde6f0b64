"""The FreeRADIUS fixture against the real seeded slapd: rlm_ldap searches as the service
account, then binds as the user. Later the same fixture points at idgate's LDAP front."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.servers.freeradius import FreeRadius, FreeRadiusError, RadiusOutcome
from tests.servers.slapd import Slapd

ACCEPT, REJECT, NO_ANSWER = RadiusOutcome.ACCEPT, RadiusOutcome.REJECT, RadiusOutcome.NO_ANSWER

Factory = Callable[..., FreeRadius]


def radius_for(make: Factory, directory: Slapd, **options: Any) -> FreeRadius:
    """A FreeRADIUS looking users up under ou=people of `directory` as the service account."""
    url = options.pop("ldap_url", directory.url)
    return make(
        url, directory.service_dn, directory.service_password, directory.people_dn, **options
    )


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        ("alice", "alice-secret", ACCEPT),
        ("alice", "wrong-secret", REJECT),
        ("nobody", "nobody-secret", REJECT),  # not in the directory
        ("erin", "erin-secret", REJECT),  # ou=contractors: outside the search base
        ("bob", "bob-secret", REJECT),  # ppolicy lock: slapd refuses the bind
    ],
)
def test_answers_from_the_directory(
    freeradius_factory: Factory, slapd: Slapd, user: str, password: str, expected: RadiusOutcome
) -> None:
    radius = radius_for(freeradius_factory, slapd)
    answer = radius.authenticate(user, password)
    assert answer.outcome is expected, f"{answer.output}\n{radius.log_tail()}"


def test_an_accept_is_one_search_as_the_service_account_and_one_bind_as_the_user(
    freeradius_factory: Factory, slapd: Slapd
) -> None:
    radius = radius_for(freeradius_factory, slapd)
    alice = slapd.users["alice"].dn
    searches, binds = slapd.count_operations("SRCH", "(uid=alice)"), slapd.count_binds(alice)
    service_binds = slapd.count_binds(slapd.service_dn)

    assert radius.authenticate("alice", "alice-secret").accepted

    assert slapd.count_operations("SRCH", "(uid=alice)") == searches + 1
    assert slapd.count_binds(alice) == binds + 1
    assert slapd.count_binds(slapd.service_dn) == service_binds + 1


def test_passwords_reach_the_directory_verbatim_and_stay_out_of_every_log(
    freeradius_factory: Factory, slapd: Slapd
) -> None:
    # Quotes, backslash and expansions must survive both the radclient input and rlm_ldap.
    password = f'it\'s "q" \\ $x %{{User-Name}} {uuid.uuid4().hex}'
    uid = f"radius-{uuid.uuid4().hex[:10]}"
    slapd.add_user(uid, userPassword=password)
    radius = radius_for(freeradius_factory, slapd)

    accepted, rejected = radius.authenticate(uid, password), radius.authenticate(uid, "x")

    assert (accepted.outcome, rejected.outcome) == (ACCEPT, REJECT), radius.log_tail()
    assert password not in accepted.output + radius.log_text()


def test_a_line_break_is_refused_without_showing_the_password(
    freeradius_factory: Factory, slapd: Slapd
) -> None:
    radius = radius_for(freeradius_factory, slapd)
    with pytest.raises(FreeRadiusError) as caught:
        radius.authenticate("alice", "alice-secret\nUser-Name = x")
    assert "alice-secret" not in str(caught.value)


def test_the_user_filter_is_configurable(freeradius_factory: Factory, slapd: Slapd) -> None:
    radius = radius_for(freeradius_factory, slapd, user_filter="(mail=%{User-Name})")
    assert radius.authenticate("alice@example.org", "alice-secret").accepted
    assert radius.authenticate("alice", "alice-secret").outcome is REJECT


def test_start_tls_with_the_directory_ca(freeradius_factory: Factory, slapd_tls: Slapd) -> None:
    radius = radius_for(freeradius_factory, slapd_tls, start_tls=True, ca_file=slapd_tls.ca_file)
    assert radius.authenticate("alice", "alice-secret").accepted, radius.log_tail()


def test_ldaps_with_the_directory_ca(freeradius_factory: Factory, slapd_tls: Slapd) -> None:
    radius = radius_for(
        freeradius_factory, slapd_tls, ldap_url=slapd_tls.ldaps_url, ca_file=slapd_tls.ca_file
    )
    assert radius.authenticate("alice", "alice-secret").accepted, radius.log_tail()


def test_starts_before_the_directory_and_rejects_until_it_answers(
    freeradius_factory: Factory, slapd_factory: Callable[..., Slapd]
) -> None:
    directory = slapd_factory()
    directory.stop()
    radius = radius_for(freeradius_factory, directory)

    # A directory that is down looks like a wrong password to the NAS.
    assert radius.authenticate("alice", "alice-secret").outcome is REJECT

    directory.start()
    # rlm_ldap waits `retry_delay` (1 s here) after a failed connect before trying again.
    # Asked again until it accepts; the budget only bounds a FreeRADIUS that never retries.
    deadline = time.monotonic() + 60
    while not radius.authenticate("alice", "alice-secret", timeout=1).accepted:
        assert time.monotonic() < deadline, (
            f"FreeRADIUS did not accept alice within 60 s of the directory's start:\n"
            f"{radius.log_tail()}"
        )
        time.sleep(0.1)


def test_no_answer_when_stopped_and_the_same_port_and_secret_after_restart(
    freeradius_factory: Factory, slapd: Slapd
) -> None:
    radius = radius_for(freeradius_factory, slapd)
    port, secret = radius.port, radius.secret
    radius.stop()

    assert radius.authenticate("alice", "alice-secret", timeout=1).outcome is NO_ANSWER

    radius.start()
    assert (radius.port, radius.secret) == (port, secret)
    assert radius.authenticate("alice", "alice-secret").accepted
