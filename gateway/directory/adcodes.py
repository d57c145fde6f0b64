"""Active Directory's reason for a failed bind: the ``data XXX`` code of its diagnostic message.

AD answers every refused simple bind with invalidCredentials (49) and a message such as
``80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563``;
the hexadecimal Win32 error after ``data`` says why (MS-ADTS §3.1.1.3.4.1, Win32 error codes).
The message itself is never passed on: only the decoded `BindResult` is.
"""

import re

from gateway.directory.outcomes import BindResult

__all__ = ["AD_DATA_CODES", "ad_bind_result", "ad_data_code"]

#: Win32 error code → what it means for the bind.
AD_DATA_CODES: dict[int, BindResult] = {
    0x52E: BindResult.INVALID_CREDENTIALS,  # ERROR_LOGON_FAILURE
    0x525: BindResult.INVALID_CREDENTIALS,  # ERROR_NO_SUCH_USER
    0x530: BindResult.NOT_PERMITTED,  # ERROR_INVALID_LOGON_HOURS
    0x531: BindResult.NOT_PERMITTED,  # ERROR_INVALID_WORKSTATION
    0x532: BindResult.PASSWORD_EXPIRED,  # ERROR_PASSWORD_EXPIRED
    0x533: BindResult.ACCOUNT_DISABLED,  # ERROR_ACCOUNT_DISABLED
    0x701: BindResult.ACCOUNT_EXPIRED,  # ERROR_ACCOUNT_EXPIRED
    0x773: BindResult.MUST_CHANGE_PASSWORD,  # ERROR_PASSWORD_MUST_CHANGE
    0x775: BindResult.ACCOUNT_LOCKED,  # ERROR_ACCOUNT_LOCKED_OUT
}

_DATA = re.compile(r"\bdata ([0-9A-Fa-f]{1,8})\b")


def ad_data_code(message: str) -> int | None:
    """The Win32 code after ``data`` in an AD diagnostic message, or None."""
    match = _DATA.search(message)
    return int(match[1], 16) if match else None


def ad_bind_result(message: str) -> BindResult:
    """What an AD invalidCredentials answer means; unknown or absent codes are
    INVALID_CREDENTIALS (never a success, never more than the directory said)."""
    code = ad_data_code(message)
    if code is None:
        return BindResult.INVALID_CREDENTIALS
    return AD_DATA_CODES.get(code, BindResult.INVALID_CREDENTIALS)
