"""What a hostile or broken client can send the front over a raw socket (RFC 4511 §4.1.1,
§4.4.1, §5.1), and that the gateway answers the next client normally after each case.

A message that cannot be decoded ends its connection with a Notice of Disconnection
(ExtendedResponse, messageID 0, responseName 1.3.6.1.4.1.1466.20036, protocolError); a
well-formed request the server will not serve gets an LDAP result and the connection lives on.
The gateway here logs at debug level, so the canary test sees everything it could ever log.
"""

import contextlib
import random
import socket
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.bulkfixture import wait_until
from tests.gateway.realgw import slapd_source
from tests.ldapproxy import ber
from tests.ldapproxy.clients import PEOPLE, can_bind
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.slapd import Slapd

PROTOCOL_ERROR = 2
AUTH_METHOD_NOT_SUPPORTED = 7
UNAVAILABLE_CRITICAL_EXTENSION = 12
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
UNWILLING_TO_PERFORM = 53
MAX_MESSAGE_BYTES = 65536

CANARY = f"canary-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def gateway(slapd: Slapd) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        [slapd_source([slapd.url])],
        ldap={"max_message_bytes": MAX_MESSAGE_BYTES},
        log_level="debug",
    )
    yield from running(process)


@pytest.fixture
def serving(gateway: GatewayProcess, slapd: Slapd) -> Iterator[GatewayProcess]:
    """The gateway; after the test, a fresh ldap3 client must still bind as alice."""
    yield gateway
    assert gateway.running, gateway.log_tail()
    alice = slapd.users["alice"]
    result = can_bind(gateway, alice.dn, alice.password)
    assert result["result"] == 0, (result, gateway.log_tail())


def assert_disconnected_with_notice(client: ber.Client) -> ber.Answer:
    answers = client.read_all_until_closed()
    assert answers, "closed without a Notice of Disconnection"
    notice = answers[-1]
    assert notice.is_notice_of_disconnection, notice
    assert notice.code == PROTOCOL_ERROR
    return notice


# -- undecodable input: Notice of Disconnection, then close -----------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(serving: GatewayProcess, seed: int) -> None:
    generator = random.Random(seed)
    noise = generator.randbytes(generator.randrange(1, 4096))
    with ber.Client(serving.port) as client:
        try:
            client.send(noise)
            if noise[0] != ber.SEQUENCE:
                assert_disconnected_with_notice(client)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may close while noise is still arriving


def test_random_bytes_behind_a_sequence_tag(serving: GatewayProcess) -> None:
    generator = random.Random(99)
    for _ in range(20):
        noise = bytes([ber.SEQUENCE]) + generator.randbytes(generator.randrange(1, 512))
        with ber.Client(serving.port) as client:
            client.send(noise)
            # Either it waits for the rest of what the header promised, or it gives up on the
            # message; it must never answer it as if it were a request.
            try:
                answers = client.read_all_until_closed(timeout=0.3)
            except TimeoutError:
                continue
            assert all(a.is_notice_of_disconnection for a in answers), answers


def test_truncated_message_then_close(serving: GatewayProcess) -> None:
    whole = ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD))
    for cut in (1, 2, len(whole) // 2, len(whole) - 1):
        with ber.Client(serving.port) as client:
            client.send(whole[:cut])


def test_truncated_message_gets_no_answer(serving: GatewayProcess) -> None:
    whole = ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD))
    with ber.Client(serving.port) as client:
        client.send(whole[:-1])
        with pytest.raises(TimeoutError):
            client.read(timeout=0.3)
        client.send(whole[-1:])  # the rest: now it is a message
        answer = client.read()
        assert answer is not None and (answer.op, answer.code) == (ber.BIND_RESPONSE, 0)


def test_oversized_length_header_is_refused_before_it_is_read(serving: GatewayProcess) -> None:
    header = bytes([ber.SEQUENCE, 0x84]) + (100 * 1024 * 1024).to_bytes(4, "big")
    with ber.Client(serving.port) as client:
        client.send(header)  # nothing else: the header alone decides
        notice = assert_disconnected_with_notice(client)
        assert "exceeds" in notice.diagnostic


def test_message_just_over_the_limit_is_refused(serving: GatewayProcess) -> None:
    big = ber.message(1, ber.bind_request(SERVICE_DN, "x" * MAX_MESSAGE_BYTES))
    with ber.Client(serving.port) as client:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            client.send(big)
        assert_disconnected_with_notice(client)


def test_indefinite_length_is_refused(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(bytes([ber.SEQUENCE, 0x80]) + ber.integer(1) + b"\x00\x00")
        assert_disconnected_with_notice(client)


def test_message_id_zero_is_refused(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.message(0, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        answers = client.read_all_until_closed()
        # RFC 4511 §4.1.1.1: messageID 0 is the server's; no bind may be answered under it.
        assert [a.op for a in answers] == [ber.EXTENDED_RESPONSE]
        assert answers[0].is_notice_of_disconnection and answers[0].code == PROTOCOL_ERROR


@pytest.mark.parametrize(
    "op",
    [
        ber.tlv(0x7E, b""),  # [APPLICATION 30], no such operation
        ber.tlv(0x5F, b"\x01"),  # [APPLICATION 31] primitive
        ber.tlv(ber.BIND_RESPONSE, ber.enumerated(0) + ber.octets("") + ber.octets("")),
        ber.tlv(ber.SEQUENCE, b""),  # not an application tag at all
    ],
    ids=["application-30", "application-31", "a-response", "sequence"],
)
def test_unknown_protocol_op_is_refused(serving: GatewayProcess, op: bytes) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, op))
        assert_disconnected_with_notice(client)


def test_message_without_an_operation(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.tlv(ber.SEQUENCE, ber.integer(1)))
        assert_disconnected_with_notice(client)


@pytest.mark.parametrize("tag", [0xA0, 0xA1, 0xA2], ids=["and", "or", "not"])
def test_a_filter_nested_as_deep_as_a_message_allows_gets_53(
    serving: GatewayProcess, tag: int
) -> None:
    # RFC 4511 §4.5.1.7: a well-formed filter, however deep, is answered on its own
    # messageID (unwillingToPerform), and the connection serves the next request.
    nested = ber.present("uid")
    while (
        len(ber.message(2, ber.search_request(PEOPLE, ber.tlv(tag, nested)))) <= MAX_MESSAGE_BYTES
    ):
        nested = ber.tlv(tag, nested)
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert client.read().code == 0
        client.send(ber.message(2, ber.search_request(PEOPLE, nested)))
        answer = client.read(timeout=30)
        client.send(ber.message(3, ber.extended_request("1.3.6.1.4.1.4203.1.11.3")))
        after = client.read(timeout=30)
    assert answer is not None and (answer.id, answer.op) == (2, ber.SEARCH_RESULT_DONE), answer
    assert answer.code == UNWILLING_TO_PERFORM, answer.diagnostic
    assert after is not None and (after.id, after.code) == (3, 0), after


# -- well-formed requests that are refused: an answer, and the connection lives on -------------


def test_search_before_bind_then_bind_on_the_same_connection(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.search_request(PEOPLE)))
        refused = client.read()
        client.send(ber.message(2, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        bound = client.read()

        assert refused is not None and refused.id == 1
        assert (refused.op, refused.code) == (ber.SEARCH_RESULT_DONE, INSUFFICIENT_ACCESS_RIGHTS)
        assert bound is not None and (bound.id, bound.op, bound.code) == (2, ber.BIND_RESPONSE, 0)


def test_unknown_critical_control(serving: GatewayProcess) -> None:
    unknown = ber.control("1.3.6.1.4.1.99999.42", critical=True)
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert client.read().code == 0
        client.send(ber.message(2, ber.search_request(PEOPLE), [unknown]))
        refused = client.read()
        client.send(ber.message(3, ber.extended_request("1.3.6.1.4.1.4203.1.11.3"), [unknown]))
        refused_extended = client.read()

        assert (refused.id, refused.op, refused.code) == (
            2,
            ber.SEARCH_RESULT_DONE,
            UNAVAILABLE_CRITICAL_EXTENSION,
        )
        assert (refused_extended.id, refused_extended.code) == (3, UNAVAILABLE_CRITICAL_EXTENSION)


def test_bind_with_another_version_is_a_protocol_error(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD, version=2)))
        answer = client.read()
        assert (answer.op, answer.code) == (ber.BIND_RESPONSE, PROTOCOL_ERROR)


def test_pipelined_requests_are_answered_in_order(serving: GatewayProcess) -> None:
    # A bind and the requests after it in one write: they wait for the bind (RFC 4511 §4.2.1).
    burst = (
        ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD))
        + ber.message(2, ber.extended_request("1.3.6.1.4.1.4203.1.11.3"))
        + ber.message(3, ber.tlv(ber.ABANDON_REQUEST, b"\x63"))  # abandon a finished id
        + ber.message(4, ber.search_request(PEOPLE))
    )
    with ber.Client(serving.port) as client:
        client.send(burst)
        answers = [client.read(), client.read()]
        done = client.read()
        while done is not None and done.op == ber.SEARCH_RESULT_ENTRY:
            done = client.read()

    assert [(a.id, a.op, a.code) for a in answers] == [
        (1, ber.BIND_RESPONSE, 0),
        (2, ber.EXTENDED_RESPONSE, 0),
    ]
    assert answers[1].element(0x8B) == f"dn:{SERVICE_DN}".encode()
    assert done is not None and (done.id, done.op, done.code) == (4, ber.SEARCH_RESULT_DONE, 0)


def test_a_bind_cannot_be_abandoned(serving: GatewayProcess, slapd: Slapd) -> None:
    # RFC 4511 §4.11: "Abandon, Bind, Unbind, and StartTLS operations cannot be abandoned."
    # The bind goes on either way (the connection ends up bound), so its answer must come.
    alice = slapd.users["alice"]
    with ber.Client(serving.port) as client:
        client.send(
            ber.message(1, ber.bind_request(alice.dn, alice.password))
            + ber.message(2, ber.tlv(ber.ABANDON_REQUEST, ber.integer(1)[2:]))
        )
        try:
            bound = client.read(timeout=30)  # it must come; returns as soon as it does
        except TimeoutError:
            bound = None
        client.send(ber.message(3, ber.extended_request("1.3.6.1.4.1.4203.1.11.3")))
        who = client.read()

    assert who is not None and who.element(0x8B) == f"dn:{alice.dn}".encode()
    assert bound is not None, "no BindResponse, yet the connection is bound as alice"
    assert (bound.id, bound.op, bound.code) == (1, ber.BIND_RESPONSE, 0)


@pytest.mark.parametrize("limit", ["size_limit", "time_limit"])
def test_negative_search_limits_are_protocol_errors(serving: GatewayProcess, limit: str) -> None:
    # RFC 4511 §4.5.1: sizeLimit and timeLimit are INTEGER (0 .. maxInt).
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert client.read().code == 0
        client.send(ber.message(2, ber.search_request(PEOPLE, **{limit: -1})))
        answer = client.read()
        while answer is not None and answer.op == ber.SEARCH_RESULT_ENTRY:
            answer = client.read()
    assert answer is not None
    assert answer.is_notice_of_disconnection or (answer.op, answer.code) == (
        ber.SEARCH_RESULT_DONE,
        PROTOCOL_ERROR,
    ), (answer, answer.diagnostic)


def test_unbind_closes_the_connection(serving: GatewayProcess) -> None:
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.tlv(ber.UNBIND_REQUEST, b"")))
        assert client.read_all_until_closed() == []


def wait_for_a_later_bind_in_the_log(gateway: GatewayProcess) -> None:
    """Bind once more under a name of its own and wait until the gateway has logged it.

    The gateway's event loop handles and logs the requests of its clients in turn, so once
    this bind, sent after the others were answered, is in the log, what they logged is too.
    """
    marker = f"uid=log-mark-{uuid.uuid4().hex},{PEOPLE}"
    assert can_bind(gateway, marker, "log-mark")["result"] == INVALID_CREDENTIALS
    wait_until(lambda: marker in gateway.log_text(), 30, f"the log line of the bind of {marker}")


# -- many clients -------------------------------------------------------------------------------


def open_descriptors(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_a_thousand_connections_opened_and_dropped(serving: GatewayProcess) -> None:
    pid = serving.pid
    assert pid is not None
    before = open_descriptors(pid)
    half = ber.message(7, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD))
    half = half[: len(half) // 2]
    for batch in range(10):
        sockets = [socket.create_connection(("127.0.0.1", serving.port)) for _ in range(100)]
        for number, sock in enumerate(sockets):
            if number % 3 == 0:
                sock.sendall(half)
            elif number % 3 == 1 and batch % 2:
                # RST instead of FIN: the server sees the connection reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for sock in sockets:
            sock.close()

    # Every dropped connection is released: the descriptors come back to where they were.
    wait_until(
        lambda: open_descriptors(pid) <= before + 5,
        60,
        f"the gateway's open descriptors to come back to {before} + 5"
        f" (now {open_descriptors(pid)})",
    )


# -- the bind password never reaches the log ----------------------------------------------------


def test_bind_passwords_never_reach_the_log(serving: GatewayProcess, slapd: Slapd) -> None:
    alice = slapd.users["alice"]
    attempts = [
        ber.bind_request(alice.dn, CANARY),  # a failed bind
        ber.bind_request("alice", CANARY),
        ber.bind_request(SERVICE_DN, CANARY),  # a failed service bind
        ber.bind_request(alice.dn, CANARY, version=2),
        ber.bind_request(b"uid=\xff\xfe," + PEOPLE.encode(), CANARY),  # name not UTF-8
        ber.bind_request(alice.dn, CANARY.encode() + b"\xff"),  # password not UTF-8
        ber.sasl_bind_request(alice.dn, "PLAIN", b"\x00alice\x00" + CANARY.encode()),
    ]
    with ber.Client(serving.port) as client:
        for number, op in enumerate(attempts, start=1):
            client.send(ber.message(number, op))
            answer = client.read()
            assert answer is not None and answer.op == ber.BIND_RESPONSE and answer.code != 0
        client.send(
            ber.message(
                99,
                ber.bind_request(alice.dn, CANARY),
                [ber.control("1.3.6.1.4.1.99999.1", critical=True)],
            )
        )
        assert client.read().code == UNAVAILABLE_CRITICAL_EXTENSION
    malformed = [
        ber.message(0, ber.bind_request(alice.dn, CANARY)),  # messageID 0
        ber.message(1, ber.bind_request(alice.dn, CANARY))[:-3],  # truncated, then closed
        ber.message(1, ber.bind_request(alice.dn, CANARY) + b"\x99\x01\x00"),  # trailing junk
        ber.tlv(ber.SEQUENCE, ber.integer(1) + ber.tlv(0x60, ber.octets(CANARY))),  # no version
        ber.message(1, ber.bind_request(alice.dn, CANARY * 2000)),  # over the size limit
    ]
    for data in malformed:
        with ber.Client(serving.port) as client:
            try:
                client.send(data)
                client.read_all_until_closed(timeout=0.5)
            except (TimeoutError, ConnectionResetError, BrokenPipeError):
                pass  # the truncated one is still waited for when the client leaves
    assert can_bind(serving, alice.dn, "not-" + CANARY)["result"] == INVALID_CREDENTIALS

    wait_for_a_later_bind_in_the_log(serving)
    log = serving.log_text()
    assert CANARY not in log
    assert CANARY.encode().hex() not in log
    # Nor the passwords of the binds that succeeded (the service's, alice's in `serving`).
    assert SERVICE_PASSWORD not in log
    assert alice.password not in log
    # The attempts were logged (by name and outcome), so the log was looked at, not empty.
    assert alice.dn in log


# -- elements of unknown tag inside a message -----------------------------------------------------


def test_unknown_element_inside_a_message_ends_the_connection(serving: GatewayProcess) -> None:
    # RFC 4511 §4.1.1: encoding structures found incorrect -> Notice of Disconnection. An
    # element the LDAPMessage SEQUENCE cannot hold must not be skipped as if absent.
    junk = b"\x99\x00"  # [CONTEXT 25], empty
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD) + junk))
        answer = client.read()
        assert answer is not None and answer.is_notice_of_disconnection, (
            f"answered as a request instead: {answer}"
        )


def test_unknown_filter_element_is_not_dropped(serving: GatewayProcess) -> None:
    # (&(objectClass=*)<unknown>) is not (&(objectClass=*)): refused, or Undefined (no entry).
    ldap_filter = ber.tlv(0xA0, ber.present("objectClass") + b"\x99\x00")
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert client.read().code == 0
        client.send(ber.message(2, ber.search_request(PEOPLE, ldap_filter)))
        answers = []
        while (answer := client.read()) is not None:
            answers.append(answer)
            if answer.op != ber.SEARCH_RESULT_ENTRY:
                break
    entries = [a for a in answers if a.op == ber.SEARCH_RESULT_ENTRY]
    assert entries == [], f"{len(entries)} entries for a filter with an unknown element"


def test_unknown_elements_do_not_flood_the_log(serving: GatewayProcess) -> None:
    # ldaptor's BER decoder print()s a ~3 KB line to stdout for every element of unknown tag
    # and skips it: 1,000 two-byte elements must not become megabytes of non-JSON output.
    before = serving.log_path.stat().st_size
    junk = b"\x99\x00" * 1000
    with ber.Client(serving.port) as client:
        client.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD) + junk))
        client.read()  # a bind response today; a Notice of Disconnection once fixed
    wait_for_a_later_bind_in_the_log(serving)

    with serving.log_path.open("rb") as log:
        log.seek(before)
        written = log.read()
    assert len(written) < 20_000, f"{len(written)} bytes logged for a {len(junk)}-byte request"
    not_json = [line for line in written.splitlines() if line and not line.startswith(b"{")]
    assert not_json == [], not_json[0][:200]
