"""Generated hostile input against a real `idgate serve --only ldap` in front of a real slapd
(RFC 4511 §4.1.1, §4.4.1, §5.1, Appendix B).

Hypothesis draws batches of LDAPMessages of every request type (bind, simple and SASL; search
with every filter choice, deep and wide; extended: StartTLS, WhoAmI, Password Modify, unknown;
compare, modify, add, delete, modify DN; abandon, unbind), with controls and messageIDs from 1
to maxInt, and byte-level mutations of them (truncated, bits flipped, bytes spliced in, wrong
length headers and tags). `fuzz_support.LdapFuzzRunner` states what each kind of case must get.
After every batch the listener must still be right: a good bind of a user succeeds, a wrong
one gets invalidCredentials. At the end the process still runs, its log has no traceback or
error from the fuzzing, and no generated password.

The module runs on a SQLite store and, with IDGATE_TEST_DATABASE_URL, on PostgreSQL: the
store is where a value with NUL or another control character ends up (PostgreSQL text cannot
hold NUL; SQLite cut LIKE patterns at it), and every such search must get an LDAP answer.

Cases: `IDGATE_FUZZ_CASES` (default `DEFAULT_CASES`, for CI, per store); the long run is
`IDGATE_FUZZ_CASES=100000 .venv/bin/python -m pytest tests/resilience/test_ldap_fuzz.py`.
An error in the gateway's log fails the batch that caused it (the failure names the batch and
shows the records); the whole log is copied next to the test's tmp_path first.

What the fuzzer found is kept as explicit cases (`test_found_by_the_fuzzer`): an element of
the wrong type where ldaptor expects an OCTET STRING, an INTEGER n, became `bytes(n)`, which
raised "negative count" past every handler (an unhandled error, the connection dropped without
a Notice of Disconnection) and for a large n made maxInt zero bytes (2 GiB).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, seed

from tests.gateway.realgw import slapd_source
from tests.ldapproxy import ber
from tests.ldapproxy.clients import Person, add_person
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.resilience.fuzz_support import (
    CANARY,
    MAX_MESSAGE_ID,
    PEOPLE,
    Batch,
    Case,
    LdapFuzzRunner,
    fuzz_cases,
    fuzz_seed,
    fuzz_settings,
    ldap_batches,
    nested,
)
from tests.resilience.support import fresh_pg_schema
from tests.servers.slapd import Slapd
from tests.store_fixtures import PG_URL

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = pytest.mark.xdist_group("ldap_fuzz")

DEFAULT_CASES = 3000
BATCH = 10
VARIANTS = 19  # mutated copies of each case: a batch is BATCH * (1 + VARIANTS) cases
CASES = fuzz_cases(DEFAULT_CASES)
#: A generous bound for the long run on a loaded machine (pytest-timeout's 120 s otherwise).
TIMEOUT = max(120, int(CASES * 0.01) + 60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def front(request: pytest.FixtureRequest, slapd: Slapd) -> Iterator[GatewayProcess]:
    # A JIT window, so binds of users the store knows cost one upstream bind (SPEC §6), and
    # a failure limit no batch reaches for the probe user (it also binds right each batch).
    def process(store_url: str | None) -> GatewayProcess:
        return GatewayProcess(
            [slapd_source([slapd.url])],
            jit_interval_seconds=300,
            sync={"failed_auth_limit": 1_000_000},
            ldap={"max_message_bytes": 262_144, "idle_timeout_seconds": 60},
            store_url=store_url,
        )

    if request.param == "sqlite":
        yield from running(process(None))
        return
    if PG_URL is None:
        pytest.skip("IDGATE_TEST_DATABASE_URL is not set: the fuzzer's PostgreSQL run not done")
    with fresh_pg_schema(PG_URL) as url:
        yield from running(process(url))


@pytest.fixture(scope="module")
def probe_user(slapd: Slapd) -> Person:
    """A user of this module only: no generated bind names it, so none can lock it."""
    return add_person(slapd, "fuzzprobe")


def error_lines(log: str) -> list[str]:
    bad = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(line)  # every line of `--log-format json` is JSON
            continue
        text = line.casefold()
        if (
            record.get("level") in ("error", "critical")
            or "traceback" in text
            or "unhandled" in text
            or "exception" in record
        ):
            bad.append(line)
    return bad


class LogWatch:
    """Reads what the gateway logged since the last look; on a finding, keeps the whole log
    (the gateway's directory goes at teardown)."""

    def __init__(self, gateway: GatewayProcess, keep: Path) -> None:
        self.gateway = gateway
        self.keep = keep
        self.position = gateway.log_path.stat().st_size
        self.seen = ""

    def new_text(self) -> str:
        with self.gateway.log_path.open("rb") as log_file:
            log_file.seek(self.position)
            data = log_file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written: next time
        self.position += len(complete)
        text = complete.decode("utf-8", "replace")
        self.seen += text
        return text

    def assert_clean(self, what: str) -> None:
        bad = error_lines(self.new_text())
        if bad:
            self.keep.write_text(self.gateway.log_text())
            shown = "\n".join(bad[:5])
            raise AssertionError(f"{what}: {len(bad)} error records (log: {self.keep}):\n{shown}")


# -- found by the fuzzer ------------------------------------------------------------------------


def control_of(*elements: bytes) -> bytes:
    """A Control SEQUENCE of any elements (RFC 4511 §4.1.11 allows OID, BOOLEAN, OCTETS)."""
    return ber.tlv(ber.SEQUENCE, b"".join(elements))


#: The fuzzer's minimal frame: an UnbindRequest whose one control has an INTEGER -1 as its
#: controlType. ldaptor decoded it, `bytes(-1)` raised ValueError("negative count") in
#: dataReceived, Twisted logged it as critical and dropped the connection without a notice.
NEGATIVE_COUNT = bytes.fromhex("300c0201014200a00530030201ff")

UNBIND = ber.tlv(ber.UNBIND_REQUEST, b"")
ROOT_DSE = ber.search_request("", scope=0)
MAX_INT = ber.integer(MAX_MESSAGE_ID)

#: Messages that must end their connection with a Notice of Disconnection (protocolError).
ENDING = {
    "controlType INTEGER -1 (the fuzzer's frame)": NEGATIVE_COUNT,
    "controlType INTEGER maxInt": ber.message(1, UNBIND, [control_of(MAX_INT)]),
    "controlValue INTEGER -1": ber.message(
        1, ROOT_DSE, [control_of(ber.octets("1.2.3"), ber.boolean(False), ber.integer(-1))]
    ),
    "controlValue INTEGER maxInt": ber.message(
        1, ROOT_DSE, [control_of(ber.octets("1.2.3"), ber.boolean(False), MAX_INT)]
    ),
    "criticality OCTET STRING": ber.message(
        1, ROOT_DSE, [control_of(ber.octets("1.2.3"), ber.octets("yes"), ber.octets("v"))]
    ),
}

_SEARCH_TAIL = (
    ber.enumerated(0) + ber.enumerated(0) + ber.integer(0) + ber.integer(0)
    + ber.boolean(False) + ber.present("objectClass") + ber.tlv(ber.SEQUENCE, b"")
)  # fmt: skip

#: Requests whose LDAPString is an INTEGER: the operation gets protocolError (2), not 80.
REFUSED = {
    "bind name INTEGER -1": (
        ber.tlv(ber.BIND_REQUEST, ber.integer(3) + ber.integer(-1) + ber.octets(CANARY, 0x80)),
        ber.BIND_RESPONSE,
    ),
    "bind name INTEGER maxInt": (
        ber.tlv(ber.BIND_REQUEST, ber.integer(3) + MAX_INT + ber.octets(CANARY, 0x80)),
        ber.BIND_RESPONSE,
    ),
    "search base INTEGER -1": (
        ber.tlv(ber.SEARCH_REQUEST, ber.integer(-1) + _SEARCH_TAIL),
        ber.SEARCH_RESULT_DONE,
    ),
    "search sizeLimit OCTET STRING": (
        ber.tlv(
            ber.SEARCH_REQUEST,
            ber.octets(PEOPLE) + ber.enumerated(2) + ber.enumerated(0) + ber.octets("5")
            + ber.integer(0) + ber.boolean(False) + ber.present("uid")
            + ber.tlv(ber.SEQUENCE, b""),
        ),
        ber.SEARCH_RESULT_DONE,
    ),
}  # fmt: skip

PROTOCOL_ERROR = 2


@pytest.mark.parametrize("frame", ENDING.values(), ids=ENDING.keys())
def test_found_by_the_fuzzer_ends_the_connection(
    front: GatewayProcess, frame: bytes, tmp_path: Path
) -> None:
    """A malformed control ends its connection with a Notice of Disconnection carrying
    protocolError (RFC 4511 §4.4.1, §4.1.11), and nothing is logged as an error."""
    watch = LogWatch(front, tmp_path / "gateway.log")
    with ber.Client(front.port) as client:
        client.send(frame)
        answers = client.read_all_until_closed(timeout=10)
    assert answers, "closed without a Notice of Disconnection"
    assert answers[-1].is_notice_of_disconnection, answers
    assert answers[-1].code == PROTOCOL_ERROR, answers[-1]
    assert len(answers) == 1, answers
    assert front.running
    watch.assert_clean(frame.hex())


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_found_by_the_fuzzer_is_a_protocol_error(
    front: GatewayProcess, case: tuple[bytes, int], tmp_path: Path
) -> None:
    """An INTEGER where an LDAPString belongs (RFC 4511 §4.1.2) is that operation's
    protocolError; the connection stays usable."""
    op, response = case
    watch = LogWatch(front, tmp_path / "gateway.log")
    with ber.Client(front.port) as client:
        client.send(ber.message(7, op) + ber.message(8, ROOT_DSE))
        answer, after = client.read(timeout=10), client.read(timeout=10)
        while after is not None and after.op == ber.SEARCH_RESULT_ENTRY:
            after = client.read(timeout=10)
    assert answer is not None and (answer.id, answer.op) == (7, response), answer
    assert answer.code == PROTOCOL_ERROR, answer.diagnostic
    assert after is not None and (after.id, after.code) == (8, 0), after
    watch.assert_clean(op.hex())


def _substrings(*parts: tuple[int, bytes]) -> bytes:
    pieces = b"".join(ber.octets(value, tag) for tag, value in parts)
    return ber.tlv(0xA4, ber.octets("uid") + ber.tlv(ber.SEQUENCE, pieces))


def _equality(value: bytes) -> bytes:
    return ber.tlv(0xA3, ber.octets("uid") + ber.octets(value))


_DEEP_AND = nested(245, ber.present("uid"), [0xA0])
_DEEPEST_NOT = nested(40_000, ber.present("uid"), [0xA2])

#: Searches of issue 22 (items 2 and 3): (op, resultCode, whether entries may come back).
ANSWERED = {
    "(&(&...)) 245 deep": (ber.search_request(PEOPLE, _DEEP_AND), 53, False),
    "(!(!...)) 40,000 deep": (ber.search_request(PEOPLE, _DEEPEST_NOT), 53, False),
    "(uid=*\\00)": (ber.search_request(PEOPLE, _substrings((0x82, b"\x00"))), 0, False),
    "(uid=alice\\00*)": (ber.search_request(PEOPLE, _substrings((0x80, b"alice\x00"))), 0, False),
    "(uid=alice\\00)": (ber.search_request(PEOPLE, _equality(b"alice\x00")), 0, False),
    "(uid>=b\\00)": (
        ber.search_request(PEOPLE, ber.tlv(0xA5, ber.octets("uid") + ber.octets(b"b\x00"))),
        0,
        True,
    ),
    "(!(uid=a\\00))": (ber.search_request(PEOPLE, ber.tlv(0xA2, _equality(b"a\x00"))), 0, True),
    "base with NUL": (ber.search_request(PEOPLE + "\x00"), 34, False),
}


@pytest.mark.parametrize("case", ANSWERED.values(), ids=ANSWERED.keys())
def test_hostile_searches_are_answered(
    front: GatewayProcess, case: tuple[bytes, int, bool], tmp_path: Path
) -> None:
    """Nesting at any depth is unwillingToPerform (53); NUL in a value matches nothing and
    in a base is invalidDNSyntax (34), as slapd answers; the connection stays usable."""
    op, code, entries_allowed = case
    watch = LogWatch(front, tmp_path / "gateway.log")
    with ber.Client(front.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert client.read(timeout=10).code == 0
        client.send(ber.message(2, op) + ber.message(3, ROOT_DSE))
        done: dict[int, ber.Answer] = {}
        entries = 0
        while len(done) < 2:  # the two operations may be answered in either order
            answer = client.read(timeout=30)
            assert answer is not None and not answer.is_notice_of_disconnection, answer
            if answer.op == ber.SEARCH_RESULT_DONE:
                done[answer.id] = answer
            elif answer.id == 2:
                entries += 1
    assert done[2].code == code, done[2].diagnostic
    assert entries == 0 or entries_allowed, entries
    assert done[3].code == 0, done[3].diagnostic
    watch.assert_clean(op[:64].hex())


#: Bind names of issue 22 (item 2): a control character, raw or escaped, makes a name no
#: source can hold. With the user's right password each is 49, as slapd answers, on both
#: stores (PostgreSQL answered 80 for NUL), and the right name still binds after them.
HOSTILE_BIND_NAMES = [
    "{uid}\x00",
    "\x00{uid}",
    "{uid}\x01",
    "{uid}\n",
    "{uid}\x7f",
    "uid={uid}\x00,ou=people,dc=example,dc=org",
    "uid={uid}\\00,ou=people,dc=example,dc=org",
    "uid={uid}\\1f,ou=people,dc=example,dc=org",
]


@pytest.mark.parametrize("form", HOSTILE_BIND_NAMES)
def test_bind_names_with_control_characters_are_invalid_credentials(
    front: GatewayProcess, probe_user: Person, form: str, tmp_path: Path
) -> None:
    watch = LogWatch(front, tmp_path / "gateway.log")
    name = form.format(uid=probe_user.uid)
    with ber.Client(front.port) as client:
        client.send(ber.message(1, ber.bind_request(name, probe_user.password)))
        refused = client.read(timeout=10)
        client.send(ber.message(2, ber.bind_request(probe_user.dn, probe_user.password)))
        bound = client.read(timeout=10)
    assert refused is not None and (refused.code, refused.diagnostic) == (
        49,
        "invalid credentials",
    ), refused
    assert bound is not None and bound.code == 0, bound
    watch.assert_clean(name.encode("utf-8").hex())


# -- the fuzzer ---------------------------------------------------------------------------------


@pytest.mark.timeout(TIMEOUT)
def test_generated_ldap_messages(front: GatewayProcess, probe_user: Person, tmp_path: Path) -> None:
    runner = LdapFuzzRunner(front.port, SERVICE_DN, SERVICE_PASSWORD)
    runner.probe(probe_user.dn, probe_user.password)
    watch = LogWatch(front, tmp_path / "gateway.log")

    @fuzz_settings(CASES // (BATCH * (1 + VARIANTS)))
    @given(ldap_batches(BATCH, VARIANTS))
    @example(Batch([Case("ending", raw=NEGATIVE_COUNT)], mutation_seed=0, variants=0))
    def fuzz(batch: Batch) -> None:
        try:
            runner.run(batch)
        except BaseException:
            runner.close()  # the next example starts from fresh connections
            raise
        assert front.running, front.log_tail()
        runner.probe(probe_user.dn, probe_user.password)
        # The probe's answer came after the batch's work: what the batch logged is written.
        watch.assert_clean("this batch made the gateway log errors")

    if (chosen := fuzz_seed()) is not None:
        fuzz = seed(chosen)(fuzz)
    began = time.monotonic()
    try:
        fuzz()
    finally:
        runner.close()
    took = time.monotonic() - began

    tally = runner.tally
    print(
        f"\n{tally.cases} LDAP cases in {took:.1f} s ({tally.cases / took:.0f}/s): "
        f"{tally.requests} requests, {tally.binds} binds, {tally.ending} ending "
        f"({tally.notices} notices); result codes {dict(sorted(tally.codes.items()))}"
    )
    assert tally.cases >= CASES * 0.9  # hypothesis ran (nearly) every example
    assert front.running, front.log_tail()
    watch.assert_clean("the fuzzing made the gateway log errors")
    log = watch.seen
    assert "ldap bind" in log  # the log was written to, so reading it proves something
    assert CANARY not in log
    assert CANARY.encode().hex() not in log
