"""Password changes through the LDAP front (SPEC §2, §6; RFC 3062).

Only for directory sources with `allow_password_change`, and forwarded to the directory bound
as the user: the gateway never holds a directory user's password beyond the call.
"""

from collections.abc import Mapping

from gateway.config import AdSource, Config, LdapSource
from gateway.directory import Directory, PasswordChange
from gateway.errors import IdgateError, PermissionDenied


class PasswordRejected(IdgateError):
    """The directory refused the change; `wrong_password` says whether the old one was wrong."""

    def __init__(self, outcome: PasswordChange) -> None:
        super().__init__(
            "old password is wrong"
            if outcome is PasswordChange.WRONG_PASSWORD
            else "the directory refused the new password"
        )
        self.wrong_password = outcome is PasswordChange.WRONG_PASSWORD


class PasswordChanges:
    def __init__(self, config: Config, directories: Mapping[str, Directory]) -> None:
        self._config = config
        self._directories = directories

    def change(self, source_id: str, dn: str, old: str, new: str) -> None:
        """Change the password of the user at `dn` in source `source_id`. Blocking.

        Raises:
            PermissionDenied: the source is not a directory source that allows it.
            PasswordRejected: the old password is wrong, or the directory refused the new one.
            UpstreamError: the directory could not be reached.
        """
        source = next((s for s in self._config.sources if s.id == source_id), None)
        if not isinstance(source, LdapSource | AdSource) or not source.allow_password_change:
            raise PermissionDenied("password changes are not allowed for this source")
        outcome = self._directories[source_id].change_password(dn, old, new)
        if outcome is not PasswordChange.CHANGED:
            raise PasswordRejected(outcome)
