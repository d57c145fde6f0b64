"""The password policy response control of OpenLDAP (draft-behera-ldap-password-policy-10 §6.2).

    PasswordPolicyResponseValue ::= SEQUENCE {
        warning [0] CHOICE {
            timeBeforeExpiration [0] INTEGER (0 .. maxInt),
            graceAuthNsRemaining [1] INTEGER (0 .. maxInt) } OPTIONAL,
        error   [1] ENUMERATED { passwordExpired (0), accountLocked (1),
                                 changeAfterReset (2), ... } OPTIONAL }

The module uses IMPLICIT TAGS, so the tagged CHOICE is wrapped explicitly (``A0 len 80|81 ...``)
and the error is a context-tagged primitive (``81 01 nn``). `decode_ppolicy` reads exactly this
and refuses anything it cannot read rather than guessing.
"""

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["PPOLICY_OID", "MalformedControl", "PolicyError", "PolicyResponse", "decode_ppolicy"]

PPOLICY_OID = "1.3.6.1.4.1.42.2.27.8.5.1"


class MalformedControl(ValueError):
    """The control value is not a PasswordPolicyResponseValue."""


class PolicyError(IntEnum):
    PASSWORD_EXPIRED = 0
    ACCOUNT_LOCKED = 1
    CHANGE_AFTER_RESET = 2
    PASSWORD_MOD_NOT_ALLOWED = 3
    MUST_SUPPLY_OLD_PASSWORD = 4
    INSUFFICIENT_PASSWORD_QUALITY = 5
    PASSWORD_TOO_SHORT = 6
    PASSWORD_TOO_YOUNG = 7
    PASSWORD_IN_HISTORY = 8


@dataclass(frozen=True)
class PolicyResponse:
    time_before_expiration: int | None = None
    grace_authns_remaining: int | None = None
    #: The error code; an unknown one is kept as a plain int.
    error: PolicyError | int | None = None


_SEQUENCE = 0x30
_WARNING = 0xA0
_ERROR = 0x81
_TIME_BEFORE_EXPIRATION = 0x80
_GRACE_AUTHNS_REMAINING = 0x81


def decode_ppolicy(value: bytes) -> PolicyResponse:
    """Decode a PasswordPolicyResponseValue (BER; short and long definite lengths).

    Raises:
        MalformedControl: anything else: another outer type, lengths that do not add up,
            unknown or repeated elements, an empty or oversized integer.
    """
    tag, content, rest = _tlv(value)
    if tag != _SEQUENCE or rest:
        raise MalformedControl("not a single SEQUENCE")
    warning: tuple[int, int] | None = None
    error: int | None = None
    while content:
        tag, element, content = _tlv(content)
        if tag == _WARNING and warning is None and error is None:
            choice, number, extra = _tlv(element)
            if extra or choice not in (_TIME_BEFORE_EXPIRATION, _GRACE_AUTHNS_REMAINING):
                raise MalformedControl("bad warning")
            warning = (choice, _integer(number))
        elif tag == _ERROR and error is None:
            error = _integer(element)
        else:
            raise MalformedControl("unexpected element")
    try:
        known: PolicyError | int | None = None if error is None else PolicyError(error)
    except ValueError:
        known = error
    return PolicyResponse(
        time_before_expiration=warning[1] if warning and warning[0] == 0x80 else None,
        grace_authns_remaining=warning[1] if warning and warning[0] == 0x81 else None,
        error=known,
    )


def _tlv(data: bytes) -> tuple[int, bytes, bytes]:
    """One tag-length-value: (tag, content, what follows). Single-octet tags only."""
    if len(data) < 2:
        raise MalformedControl("truncated")
    tag, first = data[0], data[1]
    position = 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is the indefinite form (not allowed in LDAP, RFC 4511 §5.1); 4 octets is plenty.
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise MalformedControl("bad length")
        length = int.from_bytes(data[2 : 2 + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise MalformedControl("truncated")
    return tag, data[position:end], data[end:]


def _integer(content: bytes) -> int:
    if not 1 <= len(content) <= 8:
        raise MalformedControl("bad integer")
    return int.from_bytes(content, "big", signed=True)
