"""Filter and DN injection through the real LDAP front (`idgate serve --only ldap`) in front of
a real slapd (RFC 4515 §3, RFC 4514 §2.4, RFC 4511 §4.2, §4.5.1.7; SPEC §6).

- Binds: each hostile name (filter metacharacters, NUL, escapes, DN suffixes, look-alike
  letters, 10 kB) with a seed user's RIGHT password and with a wrong one is refused with
  invalidCredentials (49; the front never answers 34 to a bind, whatever the name), no bind
  of that user's DN reaches slapd, and every search filter slapd logged meanwhile is one
  equality assertion whose value is the whole name, escaped: a raw `*`, `(` or `)` of the
  name never became filter syntax.
- Searches by the service account with injected values inside an equality assertion, sent
  raw in BER and escaped by ldap3, find no entry (and an `and` with the intended name finds
  just that entry); the exact lookup they cause upstream is escaped too.

The SCIM side of injection is tests/scim/test_bad_input.py (in process) and
test_scim_fuzz.py (the process).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from ldap3.utils.conv import escape_filter_chars

from tests.gateway.realgw import slapd_source
from tests.ldapproxy import ber
from tests.ldapproxy.clients import PEOPLE, Person, add_person, service_connection
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.slapd import Slapd

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("injection")

SUCCESS = 0
INVALID_CREDENTIALS = 49
ALICE_DN = f"uid=alice,{PEOPLE}"

#: Names that are looked up by login name (none is a DN: RFC 4514 needs `type=value` RDNs).
LOGIN_NAMES = [
    "*", "*)(uid=*", "admin)(|(uid=*", "alice)(|(uid=*", "alice)(&", "alice)", "(alice",
    "alice*", "al*ce", "\x00", "alice\x00", "alice\x00x", "alice,cn=admins", "alice+cn=x",
    "alice#", '"alice"', 'alice"', "#alice", "alice=", "alice;", "alice<", "alice>",
    "\u0430lice", "alic\u0435", "\u0430\u0441",  # Cyrillic a and ie for Latin a and e
    "a" * 10_240, "alice" + "*" * 10_240,
]  # fmt: skip
#: C0 controls and DEL: a name with one can belong to no source.
CONTROL = re.compile("[\x00-\x1f\x7f]")
#: `DOMAIN\\user` names: only an `ad` source's NetBIOS domain has those, so none is looked up.
DOWNLEVEL_NAMES = ["\\2a", "alice\\00", "\\alice", "x\\*)(uid=*"]
#: Names in DN form: outside every root, or not the entry they seem to name.
DN_NAMES = [
    f"uid=alice,{PEOPLE},cn=admins",
    f"uid=alice)(uid=*,{PEOPLE}",
    f"uid=*,{PEOPLE}",
    f"uid=alice\\00,{PEOPLE}",
    f"uid=alice\x00,{PEOPLE}",
    f"uid=alice+cn=x,{PEOPLE}",
    f"uid=\\2a,{PEOPLE}",
    f"uid=\u0430lice,{PEOPLE}",
    f"uid={'a' * 10_240},{PEOPLE}",
    "uid=alice",
    "cn=admins",
]

#: `(&(objectClass=inetOrgPerson)(uid=VALUE))`: the exact lookup of a login name, as slapd's
#: stats log writes its filter (`SRCH base=... filter="..."`).
LOOKUP = re.compile(r"\(&\(objectClass=inetOrgPerson\)\(uid=(?P<value>.*)\)\)")
LOOKUP_PREFIX = "(&(objectClass=inetOrgPerson)(uid="
#: slapd cuts a log line at about 4 kB (the next line then runs on): longer filters are
#: compared on this many characters of their value.
LOGGED_CHARS = 3000
LOGGED_FILTER = re.compile(r'filter="(?P<filter>.*)')
#: RFC 4515 §3: in a value, `*`, `(`, `)`, `\` and NUL appear only as `\XX`.
UNESCAPED = re.compile(r"[*()\x00]|\\(?![0-9A-Fa-f]{2})")


def slapd_escaped(value: str) -> str:
    """An assertion value as slapd's log spells it: normalized (uid is caseIgnoreMatch, so
    lower case), metacharacters and every octet outside printable ASCII as `\\XX`."""
    return "".join(
        f"\\{octet:02X}" if octet in b"*()\\" or not 0x20 <= octet < 0x7F else chr(octet)
        for octet in value.casefold().encode("utf-8")
    )


def unescape(value: str) -> bytes:
    return re.sub(rb"\\([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), value.encode())


@pytest.fixture(scope="module")
def front(slapd: Slapd) -> Iterator[GatewayProcess]:
    # Every bind reads upstream (no JIT window), and no limit on failures: each case counts.
    process = GatewayProcess(
        [slapd_source([slapd.url])],
        jit_interval_seconds=0,
        sync={"failed_auth_limit": 1_000_000},
    )
    yield from running(process)


def bind(port: int, name: str, password: str) -> ber.Answer:
    with ber.Client(port) as client:
        client.send(ber.message(1, ber.bind_request(name.encode(), password.encode())))
        answer = client.read(timeout=30)
    assert answer is not None and answer.op == ber.BIND_RESPONSE, (name[:80], answer)
    return answer


def new_searches(slapd: Slapd, since: int) -> list[str]:
    """The filters of the searches slapd logged after record number `since`."""
    found = []
    for record in slapd._records()[since:]:
        if record.kind == "SRCH" and (match := LOGGED_FILTER.search(record.rest)):
            logged = match["filter"]
            found.append(logged[:-1] if logged.endswith('"') else logged)
    return found


def lookup_value(logged: str) -> str | None:
    """The value of a logged login lookup (its first LOGGED_CHARS if slapd cut the line)."""
    if (match := LOOKUP.fullmatch(logged)) is not None:
        return cut(match["value"])
    if len(logged) > LOGGED_CHARS and logged.startswith(LOOKUP_PREFIX):
        return cut(logged[len(LOOKUP_PREFIX) :])
    return None


def cut(value: str) -> str:
    """The first LOGGED_CHARS of a logged value, without an escape cut in two."""
    return re.sub(r"\\[0-9A-F]?$", "", value[:LOGGED_CHARS])


def test_alice_binds_through_this_front(front: GatewayProcess, slapd: Slapd) -> None:
    # The refusals below mean something only if the right password works for the real name.
    alice = slapd.users["alice"]
    assert bind(front.port, "alice", alice.password).code == SUCCESS
    assert bind(front.port, alice.dn, alice.password).code == SUCCESS


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
@pytest.mark.parametrize("form", ["login", "dn", "downlevel"])
def test_hostile_names_never_bind(
    front: GatewayProcess, slapd: Slapd, form: str, right: bool
) -> None:
    alice = slapd.users["alice"]
    password = alice.password if right else "wrong-" + alice.password
    names = {"login": LOGIN_NAMES, "dn": DN_NAMES, "downlevel": DOWNLEVEL_NAMES}[form]
    for name in names:
        alice_binds, since = slapd.count_binds(ALICE_DN), len(slapd._records())
        answer = bind(front.port, name, password)
        assert (answer.code, answer.diagnostic) == (INVALID_CREDENTIALS, "invalid credentials"), (
            name[:80]
        )
        assert slapd.count_binds(ALICE_DN) == alice_binds, name[:80]
        filters = new_searches(slapd, since)
        lookups = [value for logged in filters if (value := lookup_value(logged)) is not None]
        # Any lookup is one escaped equality of the whole name: no `*`, `(`, `)` or NUL of it
        # became filter syntax (RFC 4515 §3).
        expected = cut(slapd_escaped(name.strip()))
        assert UNESCAPED.search(expected) is None
        assert set(lookups) <= {expected}, (name[:80], [f[:200] for f in filters])
        if len(name) < LOGGED_CHARS // 3:
            assert unescape(expected) == name.strip().casefold().encode()
        if form == "login" and CONTROL.search(name):
            # A control character: a name no source can hold, looked up nowhere (issue 22).
            assert filters == [], (name[:80], filters)
        elif form == "login":
            # A bare name is looked up by login name, once (SPEC §6).
            assert lookups == [expected], (name[:80], [f[:200] for f in filters])
        elif form == "downlevel":
            # DOMAIN\\user of no configured domain: looked up nowhere.
            assert filters == [], (name[:80], filters)
        for logged in filters:
            if lookup_value(logged) is None:
                # A DN is read with a base search of that DN, never put into a filter.
                assert "alice" not in logged and "*)" not in logged, (name[:80], logged[:200])


@pytest.fixture(scope="module")
def known_users(front: GatewayProcess, slapd: Slapd) -> list[Person]:
    """Alice and two more users the store knows (a good bind synced each), so a widened
    search would have more than the intended entry to return."""
    people = [Person("alice", slapd.users["alice"].dn, slapd.users["alice"].password)]
    people += [add_person(slapd, "inject") for _ in range(2)]
    for person in people:
        assert bind(front.port, person.uid, person.password).code == SUCCESS
    return people


def equality(attribute: str, value: bytes) -> bytes:
    return ber.tlv(0xA3, ber.octets(attribute) + ber.octets(value))


class RawService:
    """One connection bound as the service account, sending filters as raw BER."""

    def __init__(self, port: int) -> None:
        self.client = ber.Client(port)
        self.client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert self.client.read(timeout=30).code == SUCCESS
        self.message_id = 1

    def search(self, ldap_filter: bytes) -> tuple[int, list[ber.Answer]]:
        """(resultCode, entries) of a subtree search of ou=people."""
        self.message_id += 1
        self.client.send(ber.message(self.message_id, ber.search_request(PEOPLE, ldap_filter)))
        entries = []
        while (answer := self.client.read(timeout=30)) is not None:
            assert answer.id == self.message_id, answer
            if answer.op != ber.SEARCH_RESULT_ENTRY:
                return answer.code, entries
            entries.append(answer)
        raise AssertionError("connection closed before searchResultDone")


INJECTED_VALUES = [
    "alice)(uid=*", "alice)(|(uid=*)", "*", "alice*", "*)(objectClass=*", "alice\x00",
    "alice\x00)(uid=*", "\\2a", "alice\\29(uid=\\2a", ")(", "alice)(&)", "\u0430lice",
]  # fmt: skip


def test_injected_equality_values_match_nothing(
    front: GatewayProcess, slapd: Slapd, known_users: list[Person]
) -> None:
    """Each value inside one equality assertion, as raw BER octets and as ldap3 escapes it,
    finds nobody (RFC 4511 §4.5.1.7.1: it is a value, not filter syntax); and-ed with
    `(uid=alice)` it finds nobody, or-ed with it just alice. The service account does see
    every known user with a real presence filter, so "nobody" is not an empty store."""
    since = len(slapd._records())
    raw = RawService(front.port)
    try:
        code, everyone = raw.search(ber.present("uid"))
        assert code == SUCCESS and len(everyone) >= len(known_users)
        alice = equality("uid", b"alice")
        for value in INJECTED_VALUES:
            octets = value.encode()
            assert raw.search(equality("uid", octets)) == (SUCCESS, []), value
            assert raw.search(ber.tlv(0xA0, alice + equality("uid", octets))) == (SUCCESS, [])
            code, entries = raw.search(ber.tlv(0xA1, alice + equality("uid", octets)))
            assert (code, len(entries)) == (SUCCESS, 1), value
    finally:
        raw.client.close()
    with service_connection(front) as conn:
        for value in INJECTED_VALUES:
            escaped = escape_filter_chars(value)
            conn.search(PEOPLE, f"(uid={escaped})", attributes=["uid"])
            assert (conn.result["result"], conn.entries) == (SUCCESS, []), value
            conn.search(PEOPLE, f"(&(uid=alice)(uid={escaped}))", attributes=["uid"])
            assert (conn.result["result"], conn.entries) == (SUCCESS, []), value
            conn.search(PEOPLE, f"(|(uid=alice)(uid={escaped}))", attributes=["uid"])
            assert [e.uid.value for e in conn.entries] == ["alice"], value
    # What reached slapd (the exact lookup of a name the store lacks, SPEC §6) was escaped.
    wanted = {b"alice", *(v.casefold().encode() for v in INJECTED_VALUES)}
    lookups = [v for logged in new_searches(slapd, since) if (v := lookup_value(logged))]
    assert lookups, "no exact lookup reached slapd: the check below would prove nothing"
    for logged_value in lookups:
        assert UNESCAPED.search(logged_value) is None, logged_value
        assert unescape(logged_value) in wanted, logged_value
