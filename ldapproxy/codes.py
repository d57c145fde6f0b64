"""The one table from the gateway's answers to LDAP result codes (RFC 4511 §4.1.9, Appendix A).

A refused bind says why only once the password was verified: before that, every refusal is
`invalidCredentials` with the same text, so a client cannot tell an unknown user from a wrong
password (SPEC §6). The directory's own diagnostic text is never passed on.
"""

from enum import IntEnum

from gateway.auth.binds import AuthOutcome, AuthReason
from gateway.auth.password_change import PasswordRejected
from gateway.errors import IdgateError, InvalidInput, NotFound, PermissionDenied, UpstreamError
from gateway.outages import Outage


class Code(IntEnum):
    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    CONSTRAINT_VIOLATION = 19
    AUTH_METHOD_NOT_SUPPORTED = 7
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    CONFIDENTIALITY_REQUIRED = 13
    NO_SUCH_OBJECT = 32
    INVALID_DN_SYNTAX = 34
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53
    OTHER = 80


_INVALID = "invalid credentials"

#: reason -> (code, diagnostic message) for a bind whose password was verified.
_VERIFIED: dict[AuthReason, tuple[Code, str]] = {
    AuthReason.ACCOUNT_DISABLED: (Code.INVALID_CREDENTIALS, "account disabled"),
    AuthReason.ACCOUNT_EXPIRED: (Code.INVALID_CREDENTIALS, "account expired"),
    AuthReason.ACCOUNT_MISSING: (Code.INVALID_CREDENTIALS, "account no longer in the directory"),
    AuthReason.PENDING_DELETION: (Code.INVALID_CREDENTIALS, "account pending deletion"),
    AuthReason.PASSWORD_MUST_CHANGE: (Code.INVALID_CREDENTIALS, "password must be changed"),
    AuthReason.PASSWORD_EXPIRED: (Code.INVALID_CREDENTIALS, "password expired"),
    # The password was right but the record could not be brought up to date.
    AuthReason.DIRECTORY_UNAVAILABLE: (Code.UNAVAILABLE, "directory unavailable"),
}


def bind_result(outcome: AuthOutcome) -> tuple[Code, str]:
    """The bind response's resultCode and diagnosticMessage for an authentication outcome."""
    if outcome.ok:
        return Code.SUCCESS, ""
    if outcome.reason is AuthReason.DIRECTORY_UNAVAILABLE:
        # RFC 4511 §4.1.9 unavailable: no directory server answered; says nothing of the user.
        return Code.UNAVAILABLE, "directory unavailable"
    if outcome.password_verified and outcome.reason in _VERIFIED:
        return _VERIFIED[outcome.reason]
    # Wrong password, unknown user, locked, rate-limited: all the same to the client.
    return Code.INVALID_CREDENTIALS, _INVALID


def error_result(error: IdgateError) -> tuple[Code, str]:
    """The result of an operation that a gateway service refused with `error`."""
    if isinstance(error, PasswordRejected):
        if error.wrong_password:
            return Code.INVALID_CREDENTIALS, "invalid credentials"
        return Code.CONSTRAINT_VIOLATION, "the directory refused the new password"
    if isinstance(error, PermissionDenied):
        return Code.INSUFFICIENT_ACCESS_RIGHTS, str(error)
    if isinstance(error, UpstreamError):
        return Code.UNAVAILABLE, "directory unavailable"
    if isinstance(error, NotFound):
        return Code.NO_SUCH_OBJECT, "no such entry"
    if isinstance(error, InvalidInput):
        return Code.UNWILLING_TO_PERFORM, str(error)
    return Code.OTHER, "the operation could not be completed"


#: RFC 4511 §4.1.9: busy (51) "too busy to service the operation", unavailable (52) "a
#: subsystem necessary to complete the operation is offline": the store is that subsystem.
#: Both tell the client to try again later (a RADIUS server then tries its next server).
_OUTAGES: dict[Outage, tuple[Code, str]] = {
    Outage.BUSY: (Code.BUSY, "the gateway's store is busy"),
    Outage.UNAVAILABLE: (Code.UNAVAILABLE, "the gateway's store is unavailable"),
    Outage.FULL: (Code.UNAVAILABLE, "the gateway's store cannot write (out of space)"),
}


def outage_result(outage: Outage) -> tuple[Code, str]:
    """The result of an operation that a store outage stopped."""
    return _OUTAGES[outage]
