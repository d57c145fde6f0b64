"""What a directory said about a user's password (`Directory.verify`)."""

from enum import StrEnum

__all__ = ["BindResult", "PasswordChange"]


class BindResult(StrEnum):
    """The outcome of a simple bind as the user. Only OK is a successful authentication."""

    OK = "ok"
    INVALID_CREDENTIALS = "invalid_credentials"
    MUST_CHANGE_PASSWORD = "must_change_password"  # noqa: S105 - not a password
    PASSWORD_EXPIRED = "password_expired"  # noqa: S105 - not a password
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_EXPIRED = "account_expired"
    #: Logon hours or workstation restrictions (AD 530/531), or the directory refused the bind.
    NOT_PERMITTED = "not_permitted"

    @property
    def password_verified(self) -> bool:
        """Whether the directory only says this to someone who sent the right password.

        Active Directory reports a disabled or expired account, an expired password or a
        required change only after checking the password; OpenLDAP's ppolicy likewise for
        changeAfterReset and passwordExpired. A locked account (AD 775, ppolicy accountLocked)
        is reported whatever the password, and so is INVALID_CREDENTIALS, naturally.
        """
        return self not in (
            BindResult.INVALID_CREDENTIALS,
            BindResult.ACCOUNT_LOCKED,
            BindResult.NOT_PERMITTED,
        )


class PasswordChange(StrEnum):
    """The outcome of `Directory.change_password`."""

    CHANGED = "changed"
    #: The old password did not bind: nothing was changed.
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - not a password
    #: The directory refused the new password (its password policy, history, length, ...).
    REJECTED = "rejected"
