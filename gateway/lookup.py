"""Exact lookup of a directory user the store does not have yet (SPEC §5.2, §6).

Used by the LDAP front when a service account's equality filter on the login attribute finds
nobody, and by administrators' "include users not yet synchronized" search. Exact match only:
the name is escaped into an equality filter, so no wildcard ever reaches the directory.
"""

from collections.abc import Mapping

from gateway.config import AdSource, Config, LdapSource
from gateway.directory import NameKind, to_source_user
from gateway.engine.types import Trigger
from gateway.errors import NotFound
from gateway.jit import UserDirectory
from gateway.users import Clock, SyncResult, UserService


class ExactLookup:
    def __init__(
        self,
        config: Config,
        users: UserService,
        directories: Mapping[str, UserDirectory],
        *,
        clock: Clock,
    ) -> None:
        self._config = config
        self._users = users
        self._directories = directories
        self._clock = clock

    def include(self, source_id: str, login: str) -> SyncResult | None:
        """Find `login` in the source's directory by exact match and add (or refresh) the user.

        Returns:
            The sync's result, or None when the directory has no such user in scope.

        Raises:
            NotFound: the source does not exist or is not a directory source.
            UpstreamError: the directory could not be read.
        """
        source = self._config.source(source_id) if self._has(source_id) else None
        if not isinstance(source, LdapSource | AdSource):
            raise NotFound(f"no directory source with id {source_id}")
        entry = self._directories[source_id].find_user(NameKind.LOGIN, login)
        if entry is None:
            return None
        report = to_source_user(entry, source, self._clock())
        return self._users.apply_report(source_id, report, Trigger.SINGLE)

    def _has(self, source_id: str) -> bool:
        return any(s.id == source_id for s in self._config.sources)
