"""LDAP messages on the wire: framing, decoding, and the controls the front understands.

ldaptor's BER classes do the encoding; this module adds what a server facing the network needs
around them:

- framing with a size limit, read from the outer SEQUENCE header before anything is decoded
  (RFC 4511 §5.1: one LDAPMessage per BER element), so an oversized or endless message costs
  a few bytes of header, not memory;
- one exception, `BadMessage`, for anything that does not decode as an LDAPMessage carrying a
  request; the server answers it with the Notice of Disconnection (RFC 4511 §4.4.1);
- a bind request whose ``repr`` leaves the password out (ldaptor's prints it);
- the Simple Paged Results control value (RFC 2696).
"""

from dataclasses import dataclass
from typing import Any, ClassVar

from ldaptor.protocols import pureber, pureldap

#: RFC 4511 §4.4.1: the Notice of Disconnection's responseName.
NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"
PAGED_RESULTS = b"1.2.840.113556.1.4.319"
#: Controls a client may mark critical: the front acts on them or they are harmless here.
#: ManageDsaIT (RFC 3296) changes nothing where there are no referral objects.
MANAGE_DSA_IT = b"2.16.840.1.113730.3.4.2"


class BadMessage(Exception):
    """What arrived is not an LDAPMessage carrying a request (RFC 4511 §4.1.1)."""


class SafeBindRequest(pureldap.LDAPBindRequest):  # type: ignore[misc]
    """A bind request that never shows its credentials, whoever logs it."""

    def __repr__(self) -> str:
        kind = "sasl" if self.sasl else "simple"
        return f"LDAPBindRequest(version={self.version!r}, dn={self.dn!r}, auth=<{kind} hidden>)"


class _Strict(pureber.BERDecoderContext):  # type: ignore[misc]
    """The last resort of every lookup: an unknown tag is a bad message (RFC 4511 §4.1.1).

    ldaptor's own last resort prints a line per unknown element to stdout and skips the
    element, which lets a client flood the log and have parts of a request ignored.
    """

    def lookup_id(self, tag: int) -> Any:
        found = super().lookup_id(tag)
        if found is None:
            raise BadMessage(f"unknown BER tag 0x{tag:02x}")
        return found


class _Operations(pureldap.LDAPBERDecoderContext):  # type: ignore[misc]
    Identities: ClassVar[dict[int, type]] = {
        **pureldap.LDAPBERDecoderContext.Identities,
        pureldap.LDAPBindRequest.tag: SafeBindRequest,
    }


def _is(item: Any, kind: Any) -> bool:
    """`item` is a BER element of exactly the universal type `kind` (not an LDAP subclass)."""
    return type(item) is kind and item.tag == kind.tag


class _StrictControl(pureldap.LDAPControl):  # type: ignore[misc]
    """Control ::= SEQUENCE { controlType LDAPOID, criticality BOOLEAN DEFAULT FALSE,
    controlValue OCTET STRING OPTIONAL } (RFC 4511 §4.1.11), checked element by element.

    ldaptor takes any element in any place there: a controlType or controlValue sent as an
    INTEGER n became `bytes(n)`, n zero bytes (2 GiB for maxInt) or, for n < 0, a
    ValueError raised past every handler ("negative count", found by the fuzzer).
    """

    @classmethod
    def fromBER(cls, tag: int, content: bytes, berdecoder: Any = None) -> Any:
        items = pureber.berDecodeMultiple(content, berdecoder)
        if not items or not _is(items[0], pureber.BEROctetString):
            raise BadMessage("malformed control: controlType is not an OCTET STRING")
        rest = items[1:]
        critical = rest.pop(0).value if rest and _is(rest[0], pureber.BERBoolean) else None
        value = rest.pop(0).value if rest and _is(rest[0], pureber.BEROctetString) else None
        if rest:
            raise BadMessage("malformed control")
        return cls(items[0].value, criticality=critical, controlValue=value, tag=tag)


class _ControlsContext(pureldap.LDAPBERDecoderContext_LDAPControls):  # type: ignore[misc]
    Identities: ClassVar[dict[int, type]] = {pureldap.LDAPControl.tag: _StrictControl}


class _StrictControls(pureldap.LDAPControls):  # type: ignore[misc]
    """Controls [0] whose elements are decoded strictly: ldaptor's controls context has no
    fallback, so an element of unknown tag there was printed to stdout and skipped."""

    @classmethod
    def fromBER(cls, tag: int, content: bytes, berdecoder: Any = None) -> Any:
        context = _ControlsContext(fallback=_Strict(), inherit=berdecoder)
        return cls(pureber.berDecodeMultiple(content, context), tag=tag)


class _Message(pureldap.LDAPBERDecoderContext_LDAPMessage):  # type: ignore[misc]
    Identities: ClassVar[dict[int, type]] = {
        **pureldap.LDAPBERDecoderContext_LDAPMessage.Identities,
        pureldap.LDAPControls.tag: _StrictControls,
    }


def _decoder() -> Any:
    return _Message(
        fallback=_Operations(fallback=_Strict()),
        inherit=_Operations(fallback=_Strict()),
    )


_MESSAGE = _decoder()
_SEQUENCE = 0x30


@dataclass(frozen=True)
class Control:
    oid: bytes
    critical: bool
    value: bytes | None


@dataclass(frozen=True)
class Request:
    id: int
    op: Any
    controls: tuple[Control, ...]


def _header(buffer: bytes) -> tuple[int, int] | None:
    """(header length, content length) of the SEQUENCE `buffer` starts with; None if cut short.

    Raises:
        BadMessage: not a SEQUENCE, or a length form LDAP does not allow.
    """
    if buffer[0] != _SEQUENCE:
        raise BadMessage("not an LDAPMessage")
    if len(buffer) < 2:
        return None
    first = buffer[1]
    if first < 0x80:
        return 2, first
    octets = first & 0x7F
    if octets == 0 or octets > 4:  # indefinite length is not allowed (RFC 4511 §5.1)
        raise BadMessage("unsupported BER length")
    if len(buffer) < 2 + octets:
        return None
    return 2 + octets, int.from_bytes(buffer[2 : 2 + octets], "big")


def frame_length(buffer: bytes, limit: int) -> int | None:
    """The length of the first whole message in `buffer`, or None when more bytes are needed.

    Raises:
        BadMessage: not a SEQUENCE, a malformed length, or a message longer than `limit`.
    """
    header = _header(buffer) if buffer else None
    if header is None:
        return None
    total = header[0] + header[1]
    if total > limit:
        raise BadMessage(f"message of {total} bytes exceeds the limit of {limit}")
    return total if len(buffer) >= total else None


def decode(frame: bytes) -> Request:
    """Decode one framed LDAPMessage (`frame_length` said it is whole).

    Raises:
        BadMessage: anything ldaptor cannot decode, or a message that is not a request.
    """
    header = _header(frame)
    assert header is not None
    try:
        message = pureldap.LDAPMessage.fromBER(_SEQUENCE, frame[header[0] :], _MESSAGE)
        controls = tuple(
            Control(oid, bool(critical), value) for oid, critical, value in message.controls or ()
        )
    except BadMessage:
        raise
    except Exception as exc:  # ldaptor raises asserts, IndexError, its own BER errors
        raise BadMessage("undecodable LDAPMessage") from exc
    if not isinstance(message.value, pureldap.LDAPProtocolRequest):
        raise BadMessage("not a request")
    if not isinstance(message.id, int) or not 0 <= message.id <= 2**31 - 1:
        raise BadMessage("bad messageID")
    return Request(message.id, message.value, controls)


def encode(
    message_id: int, op: Any, controls: list[tuple[bytes, bool | None, bytes]] | None = None
) -> bytes:
    return bytes(pureldap.LDAPMessage(op, controls=controls, id=message_id).toWire())


def notice_of_disconnection(code: int, message: str) -> bytes:
    """RFC 4511 §4.4.1: the unsolicited notification sent before the server closes."""
    op = pureldap.LDAPExtendedResponse(
        resultCode=code, responseName=NOTICE_OF_DISCONNECTION, errorMessage=message
    )
    return encode(0, op)


# -- RFC 2696 Simple Paged Results --------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    size: int
    cookie: bytes


def strict_context() -> Any:
    """A decoder context that refuses unknown tags, for nested values (extended requests)."""
    return _Strict()


def decode_page_request(value: bytes | None) -> PageRequest:
    """realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING }.

    Raises:
        BadMessage: the value is not that sequence.
    """
    if value is None:
        raise BadMessage("paged results control without a value")
    try:
        decoded, used = pureber.berDecodeObject(_Strict(), value)
        size, cookie = decoded
    except Exception as exc:
        raise BadMessage("malformed paged results control") from exc
    if used != len(value) or not isinstance(size, pureber.BERInteger):
        raise BadMessage("malformed paged results control")
    if not isinstance(cookie, pureber.BEROctetString) or size.value < 0:
        raise BadMessage("malformed paged results control")
    return PageRequest(int(size.value), bytes(cookie.value))


def page_response(cookie: bytes) -> tuple[bytes, bool | None, bytes]:
    """The control returned with SearchResultDone; size is 0 ("unknown", RFC 2696 §3)."""
    value = pureber.BERSequence([pureber.BERInteger(0), pureber.BEROctetString(cookie)])
    return (PAGED_RESULTS, None, bytes(value.toWire()))
