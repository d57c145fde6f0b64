"""Just enough BER (X.690) to write LDAP requests by hand, well-formed or not, and to read
the server's answers off a raw socket (RFC 4511 §4, §5.1).

Independent of ldaptor on purpose: the server decodes and encodes with ldaptor, so the tests
must not share its mistakes.
"""

import socket
import time
from dataclasses import dataclass

SEQUENCE = 0x30
BIND_REQUEST = 0x60
BIND_RESPONSE = 0x61
UNBIND_REQUEST = 0x42
SEARCH_REQUEST = 0x63
SEARCH_RESULT_ENTRY = 0x64
SEARCH_RESULT_DONE = 0x65
ABANDON_REQUEST = 0x50
EXTENDED_REQUEST = 0x77
EXTENDED_RESPONSE = 0x78
NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def integer(n: int, tag: int = 0x02) -> bytes:
    size = max(1, (n.bit_length() + 8) // 8)
    return tlv(tag, n.to_bytes(size, "big", signed=True))


def enumerated(n: int) -> bytes:
    return integer(n, 0x0A)


def octets(value: bytes | str, tag: int = 0x04) -> bytes:
    return tlv(tag, value.encode() if isinstance(value, str) else value)


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def control(oid: str, critical: bool, value: bytes | None = None) -> bytes:
    body = octets(oid) + (boolean(True) if critical else b"")
    return tlv(SEQUENCE, body + (octets(value) if value is not None else b""))


def message(message_id: int, op: bytes, controls: list[bytes] | None = None) -> bytes:
    body = integer(message_id) + op
    if controls:
        body += tlv(0xA0, b"".join(controls))
    return tlv(SEQUENCE, body)


def bind_request(name: bytes | str, password: bytes | str, version: int = 3) -> bytes:
    """A simple bind: authentication [0] OCTET STRING."""
    return tlv(BIND_REQUEST, integer(version) + octets(name) + octets(password, 0x80))


def sasl_bind_request(name: str, mechanism: str, credentials: bytes | None) -> bytes:
    sasl = octets(mechanism) + (octets(credentials) if credentials is not None else b"")
    return tlv(BIND_REQUEST, integer(3) + octets(name) + tlv(0xA3, sasl))


def present(attribute: str) -> bytes:
    return octets(attribute, 0x87)


def search_request(
    base: str,
    ldap_filter: bytes | None = None,
    scope: int = 2,
    size_limit: int = 0,
    time_limit: int = 0,
) -> bytes:
    return tlv(
        SEARCH_REQUEST,
        octets(base)
        + enumerated(scope)
        + enumerated(0)  # derefAliases: never
        + integer(size_limit)
        + integer(time_limit)
        + boolean(False)  # typesOnly
        + (ldap_filter if ldap_filter is not None else present("objectClass"))
        + tlv(SEQUENCE, octets("1.1")),
    )


def extended_request(oid: str) -> bytes:
    return tlv(EXTENDED_REQUEST, octets(oid, 0x80))


# -- reading answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One LDAPMessage from the server: its id, the protocolOp's tag and its elements."""

    id: int
    op: int
    elements: list[tuple[int, bytes]]

    @property
    def code(self) -> int:
        """resultCode of an LDAPResult (the first element, an ENUMERATED)."""
        tag, value = self.elements[0]
        assert tag == 0x0A, f"not an LDAPResult: {self}"
        return int.from_bytes(value, "big")

    @property
    def diagnostic(self) -> str:
        return self.elements[2][1].decode()

    def element(self, tag: int) -> bytes | None:
        return next((value for t, value in self.elements if t == tag), None)

    @property
    def is_notice_of_disconnection(self) -> bool:
        name = self.element(0x8A)
        return (
            self.id == 0
            and self.op == EXTENDED_RESPONSE
            and name is not None
            and name.decode() == NOTICE_OF_DISCONNECTION
        )


def _parse(buffer: bytes, pos: int = 0) -> tuple[int, bytes, int] | None:
    """(tag, content, next position) of the TLV at `pos`, or None when incomplete."""
    if len(buffer) < pos + 2:
        return None
    tag, first = buffer[pos], buffer[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        octet_count = first & 0x7F
        if len(buffer) < pos + octet_count:
            return None
        size = int.from_bytes(buffer[pos : pos + octet_count], "big")
        pos += octet_count
    if len(buffer) < pos + size:
        return None
    return tag, buffer[pos : pos + size], pos + size


def elements(content: bytes) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(content):
        parsed = _parse(content, pos)
        assert parsed is not None, f"truncated element in {content.hex()}"
        tag, value, pos = parsed
        found.append((tag, value))
    return found


def decode(frame: bytes) -> Answer:
    (tag, content, _) = _parse(frame) or (None, b"", 0)
    assert tag == SEQUENCE, frame.hex()
    parts = elements(content)
    (id_tag, id_value), (op_tag, op_value) = parts[0], parts[1]
    assert id_tag == 0x02
    return Answer(int.from_bytes(id_value, "big"), op_tag, elements(op_value))


class Client:
    """A raw TCP connection to the front: send bytes, read whole LDAPMessages."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        self.closed_by_server = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 30.0) -> Answer | None:
        """The next message; None when the server closed the connection first.

        Raises: TimeoutError when nothing complete arrives within `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            parsed = _parse(self._buffer)
            if parsed is not None:
                frame_end = parsed[2]
                frame, self._buffer = self._buffer[:frame_end], self._buffer[frame_end:]
                return decode(frame)
            if self.closed_by_server:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no whole message; buffered {self._buffer.hex()}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed_by_server = True
            self._buffer += chunk

    def read_all_until_closed(self, timeout: float = 30.0) -> list[Answer]:
        """Every message until the server closes the connection.

        Raises: TimeoutError when the server keeps it open past `timeout`.
        """
        answers: list[Answer] = []
        deadline = time.monotonic() + timeout
        while True:
            answer = self.read(max(0.01, deadline - time.monotonic()))
            if answer is None:
                return answers
            answers.append(answer)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
