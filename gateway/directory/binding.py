"""From a simple bind's answer to a `BindResult` (pure; SPEC §6).

The answer is the LDAP result code, the diagnostic message (read only for Active Directory's
``data XXX`` code, never passed on) and, from OpenLDAP, the password policy response control.
Answers that say nothing about the user (the server is busy, wants TLS, misbehaves) raise
instead, so a directory problem is never reported as a wrong password or as a success.
"""

from typing import Literal

from gateway.directory.adcodes import ad_bind_result
from gateway.directory.outcomes import BindResult
from gateway.directory.ppolicy import MalformedControl, PolicyError, decode_ppolicy
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["classify_bind"]

# RFC 4511 §4.1.9 result codes.
SUCCESS = 0
TIME_LIMIT_EXCEEDED = 3
STRONGER_AUTH_REQUIRED = 8
CONFIDENTIALITY_REQUIRED = 13
NO_SUCH_OBJECT = 32
INVALID_DN_SYNTAX = 34
INAPPROPRIATE_AUTHENTICATION = 48
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
BUSY = 51
UNAVAILABLE = 52
UNWILLING_TO_PERFORM = 53

#: Answers about the user (or the name), whatever the directory.
_USER_ANSWERS = {
    SUCCESS: BindResult.OK,
    INVALID_CREDENTIALS: BindResult.INVALID_CREDENTIALS,
    NO_SUCH_OBJECT: BindResult.INVALID_CREDENTIALS,
    INVALID_DN_SYNTAX: BindResult.INVALID_CREDENTIALS,
    INAPPROPRIATE_AUTHENTICATION: BindResult.INVALID_CREDENTIALS,
    INSUFFICIENT_ACCESS_RIGHTS: BindResult.NOT_PERMITTED,
    UNWILLING_TO_PERFORM: BindResult.NOT_PERMITTED,
}

_POLICY_ERRORS = {
    PolicyError.PASSWORD_EXPIRED: BindResult.PASSWORD_EXPIRED,
    PolicyError.ACCOUNT_LOCKED: BindResult.ACCOUNT_LOCKED,
    PolicyError.CHANGE_AFTER_RESET: BindResult.MUST_CHANGE_PASSWORD,
}


def classify_bind(
    kind: Literal["ldap", "ad"], result_code: int, message: str, ppolicy: bytes | None
) -> BindResult:
    """Decide what a bind answer says about the user.

    Args:
        kind: the source kind: ``ad`` reads the ``data`` code of an invalidCredentials
            message, ``ldap`` the ppolicy control.
        result_code: the BindResponse result code.
        message: the diagnostic message (only AD's ``data`` code is read from it).
        ppolicy: the raw value of the password policy response control, if one came back.

    Returns:
        The `BindResult`. OK only for a success without a ppolicy error, grace login
        (graceAuthNsRemaining: the password has expired) or required change.

    Raises:
        UpstreamUnavailable: busy or unavailable (51, 52).
        UpstreamTimeout: timeLimitExceeded (3).
        UpstreamError: the directory wants a stronger or confidential connection (8, 13),
            sent an unreadable ppolicy control, or answered with another code.
    """
    if result_code in (BUSY, UNAVAILABLE):
        raise UpstreamUnavailable(
            f"the directory refused the bind as busy or unavailable ({result_code})"
        )
    if result_code == TIME_LIMIT_EXCEEDED:
        raise UpstreamTimeout("the directory's time limit ran out during the bind")
    if result_code in (STRONGER_AUTH_REQUIRED, CONFIDENTIALITY_REQUIRED):
        raise UpstreamError(
            f"the directory requires a protected connection for binds ({result_code}): use TLS"
        )
    if result_code not in _USER_ANSWERS:
        raise UpstreamError(f"unexpected bind result code {result_code}")
    if kind == "ad":
        if result_code == INVALID_CREDENTIALS:
            return ad_bind_result(message)
        return _USER_ANSWERS[result_code]
    if ppolicy is not None and result_code in (SUCCESS, INVALID_CREDENTIALS):
        try:
            policy = decode_ppolicy(ppolicy)
        except MalformedControl as exc:
            # Fail closed without calling the password wrong: the directory misbehaved.
            raise UpstreamError("unreadable password policy response control") from exc
        # changeAfterReset with a failed bind says nothing: the password was wrong anyway.
        if isinstance(policy.error, PolicyError) and (
            policy.error in _POLICY_ERRORS
            and (result_code == SUCCESS or policy.error is not PolicyError.CHANGE_AFTER_RESET)
        ):
            return _POLICY_ERRORS[policy.error]
        # A grace login succeeds at the directory but the password has expired (draft §8.1.2.1).
        if result_code == SUCCESS and policy.grace_authns_remaining is not None:
            return BindResult.PASSWORD_EXPIRED
    return _USER_ANSWERS[result_code]
