"""LDAP messages on the wire: framing, decoding, and the controls the front understands.

ldaptor's BER classes do the encoding; this module adds what a server facing the network needs
around them:

- framing with a size limit, read from the outer SEQUENCE header before anything is decoded
  (RFC 4511 §5.1: one LDAPMessage per BER element), so an oversized or endless message costs
  a few bytes of header, not memory;
- one exception, `BadMessage`, for anything that does not decode as an LDAPMessage carrying a
  request; the server answers it with the Notice of Disconnection (RFC 4511 §4.4.1);
- a bound on nesting: ldaptor's decoder recurses once or more per BER level, so a message is
  measured first, without recursion (`nesting`), and handed to ldaptor only when it nests at
  most `MAX_NESTING` levels. Filters are the one recursive type of RFC 4511 (§4.5.1.7): a
  well-formed SearchRequest whose filter nests deeper is decoded with that filter left as
  bytes, a `DeepFilter`, which `filters` refuses as too deep; anything else that deep is a
  bad message;
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
_SEARCH_REQUEST = 0x63
_CONSTRUCTED = 0x20

#: The deepest BER nesting handed to ldaptor, counted from the LDAPMessage (1) down to the
#: innermost element. A filter of `filters.MAX_DEPTH` (20) levels with a substrings leaf
#: nests 25 deep, so every filter the gateway evaluates is decoded; ldaptor needs about three
#: Python frames per level, which keeps it far from the recursion limit (it failed at about
#: 245 filter levels inside the server).
MAX_NESTING = 64


@dataclass(frozen=True)
class Control:
    oid: bytes
    critical: bool
    value: bytes | None


@dataclass(frozen=True, repr=False)
class DeepFilter:
    """A search filter (RFC 4511 §4.5.1.7) nested deeper than `MAX_NESTING`, well-formed as
    far as that depth, kept as its BER bytes: never decoded, so no recursion ever meets it."""

    raw: bytes

    def toWire(self) -> bytes:
        """ldaptor's name: the server keys a paged search by its filter's BER."""
        return self.raw

    def __repr__(self) -> str:
        return f"DeepFilter(<{len(self.raw)} bytes>)"


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

    A SearchRequest whose filter nests deeper than `MAX_NESTING` comes back with a
    `DeepFilter` as its filter.

    Raises:
        BadMessage: anything ldaptor cannot decode, a message that is not a request, or one
            that nests deeper than `MAX_NESTING` other than in a well-formed search filter.
    """
    header = _header(frame)
    assert header is not None
    deep: DeepFilter | None = None
    if nesting(frame, stop_above=MAX_NESTING) > MAX_NESTING:
        frame, deep = _without_deep_filter(frame, header[0])
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
    if deep is not None:
        message.value.filter = deep
    return Request(message.id, message.value, controls)


# -- nesting, measured without recursion (X.690 §8.1) ---------------------------------------------

#: (tag, start of the element, start of its contents, end of the element)
_Element = tuple[int, int, int, int]


def _element(data: bytes, start: int, end: int) -> _Element | None:
    """The element at `start`, read as ldaptor reads it (one-octet tags, definite lengths in
    any number of octets, X.690 §8.1.3.5); None when no element fits before `end`."""
    if end - start < 2:
        return None
    first = data[start + 1]
    contents = start + 2
    size = first
    if first & 0x80:
        octets = first & 0x7F
        if octets == 0 or contents + octets > end:  # the indefinite form, or cut short
            return None
        size = int.from_bytes(data[contents : contents + octets], "big")
        contents += octets
    if contents + size > end:
        return None
    return data[start], start, contents, contents + size


def _elements(data: bytes, start: int, end: int) -> list[_Element] | None:
    """The elements that exactly fill data[start:end]; None when they do not."""
    found: list[_Element] = []
    while start < end:
        element = _element(data, start, end)
        if element is None:
            return None
        found.append(element)
        start = element[3]
    return found


def nesting(data: bytes, *, stop_above: int | None = None) -> int:
    """How many elements deep `data` (one element) nests: 1 for a primitive one.

    Only constructed elements (X.690 §8.1.2.5) are entered; contents that do not parse stop the
    walk there, as they stop ldaptor. Iterative, so any depth that fits in `data` is measured.
    With `stop_above`, the walk ends at the first element deeper than that (the answer is then
    only "deeper"): a chain of a million levels costs `stop_above` steps, not a million.
    """
    deepest = 0
    regions = [(0, len(data), 1)]
    while regions:
        position, end, depth = regions.pop()
        while (element := _element(data, position, end)) is not None:
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                return deepest
            tag, _, contents, position = element
            if tag & _CONSTRUCTED:
                regions.append((contents, position, depth + 1))
    return deepest


def _without_deep_filter(frame: bytes, header: int) -> tuple[bytes, DeepFilter]:
    """The frame with its search filter replaced by `(objectClass=*)`, and that filter.

    Raises:
        BadMessage: the frame is no SearchRequest with a well-formed filter (RFC 4511
            §4.5.1), or it nests deeper than `MAX_NESTING` outside the filter too.
    """
    parts = _elements(frame, header, len(frame))
    if parts is None or len(parts) < 2 or parts[1][0] != _SEARCH_REQUEST:
        raise BadMessage("nested too deeply")
    _, op_start, op_contents, op_end = parts[1]
    fields = _elements(frame, op_contents, op_end)
    # RFC 4511 §4.5.1: baseObject, scope, derefAliases, sizeLimit, timeLimit, typesOnly,
    # filter, attributes.
    if fields is None or len(fields) != 8:
        raise BadMessage("nested too deeply")
    _, filter_start, _, filter_end = fields[6]
    if not _is_filter(frame, filter_start, filter_end):
        raise BadMessage("nested too deeply")
    placeholder = bytes(pureldap.LDAPFilterMatchAll.toWire())
    search = frame[op_contents:filter_start] + placeholder + frame[filter_end:op_end]
    body = frame[header:op_start] + _tlv(_SEARCH_REQUEST, search) + frame[op_end:]
    rebuilt = _tlv(_SEQUENCE, body)
    if nesting(rebuilt) > MAX_NESTING:
        raise BadMessage("nested too deeply")
    return rebuilt, DeepFilter(frame[filter_start:filter_end])


# RFC 4511 §4.5.1 Filter, by tag: SETs of filters, one filter, or a fixed shape of primitive
# elements (AttributeValueAssertion; SubstringFilter; MatchingRuleAssertion).
_FILTER_SETS = {0xA0, 0xA1}  # and, or (an empty set is allowed: RFC 4526)
_FILTER_NOT = 0xA2
_ASSERTIONS = {0xA3, 0xA5, 0xA6, 0xA8}  # equalityMatch, greaterOrEqual, lessOrEqual, approx
_SUBSTRINGS = 0xA4
_PRESENT = 0x87
_EXTENSIBLE = 0xA9
_OCTET_STRING = 0x04
_SUBSTRING_PARTS = {0x80, 0x81, 0x82}  # initial, any, final
_MATCHING = {0x81, 0x82, 0x83, 0x84}
_MATCH_VALUE = 0x83
_FILTER_TAGS = {*_FILTER_SETS, _FILTER_NOT, *_ASSERTIONS, _SUBSTRINGS, _PRESENT, _EXTENSIBLE}


def _is_filter(data: bytes, start: int, end: int) -> bool:
    """Whether data[start:end] is one Filter, well-formed in its first `MAX_NESTING` levels;
    iterative, as `nesting`.

    Below that the filter is not read: it is refused as too deep whatever it holds there, and
    reading it would let one message of `ldap.max_message_bytes` of nesting hold the event loop
    for most of a second (a 1 MiB chain of NOTs is ~250,000 levels).
    """
    pending = [(start, end, 1)]
    while pending:
        region_start, region_end, depth = pending.pop()
        items = _elements(data, region_start, region_end)
        if items is None or len(items) != 1:
            return False
        tag, _, contents, stop = items[0]
        if depth > MAX_NESTING and tag in _FILTER_TAGS:
            continue  # unread below the bound (docstring)
        if tag == _PRESENT:
            continue  # primitive: its contents are the attribute description
        if tag == _FILTER_NOT:
            pending.append((contents, stop, depth + 1))
            continue
        inner = _elements(data, contents, stop)
        if inner is None:
            return False
        if tag in _FILTER_SETS:
            pending.extend((item[1], item[3], depth + 1) for item in inner)
        elif not _is_leaf(data, tag, inner):
            return False
    return True


def _is_leaf(data: bytes, tag: int, inner: list[_Element]) -> bool:
    """A filter item other than and/or/not/present, by its tag and its elements."""
    tags = [item[0] for item in inner]
    if tag in _ASSERTIONS:
        return tags == [_OCTET_STRING, _OCTET_STRING]
    if tag == _SUBSTRINGS:
        if tags != [_OCTET_STRING, _SEQUENCE]:
            return False
        parts = _elements(data, inner[1][2], inner[1][3])
        return bool(parts) and all(part[0] in _SUBSTRING_PARTS for part in parts or ())
    if tag == _EXTENSIBLE:
        # matchingRule [1]?, type [2]?, matchValue [3], dnAttributes [4]?, in that order.
        return _MATCH_VALUE in tags and tags == sorted(set(tags)) and set(tags) <= _MATCHING
    return False


def _tlv(tag: int, contents: bytes) -> bytes:
    """One element in the definite form (X.690 §8.1.3)."""
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + contents


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
