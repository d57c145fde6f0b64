"""Single-user reads of a directory for administrators and the LDAP front (SPEC §5.2, §6).

- `include`: exact lookup of a directory user the store does not have yet. Used by the LDAP
  front when a service account's equality filter on the login attribute finds nobody, and by
  administrators' "include users not yet synchronized" search. Exact match only: the name is
  escaped into an equality filter, so no wildcard ever reaches the directory.
- `sync`: an administrator's sync of one stored user now, without the JIT throttle.
"""

from collections.abc import Mapping

from gateway.auth.jit import UserDirectory
from gateway.auth.routing import has_control_character
from gateway.config import AdSource, Config, LdapSource
from gateway.directory import NameKind, to_source_user
from gateway.engine.roles import Permission
from gateway.engine.types import Trigger
from gateway.errors import InvalidInput, NotFound
from gateway.users.service import Actor, Clock, SyncResult, UserService, stored_user
from store.db import Store


class ExactLookup:
    def __init__(
        self,
        config: Config,
        store: Store,
        users: UserService,
        directories: Mapping[str, UserDirectory],
        *,
        clock: Clock,
    ) -> None:
        self._config = config
        self._store = store
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
        if has_control_character(login):
            return None  # no directory holds such a name: no round trip to learn it
        entry = self._directories[source_id].find_user(NameKind.LOGIN, login)
        if entry is None:
            return None
        report = to_source_user(entry, source, self._clock())
        with self._store.writing() as session:
            return self._users.apply_report(session, source_id, report, Trigger.SINGLE)

    def sync(self, actor: Actor, user_id: str) -> SyncResult:
        """Re-read one stored user from its directory now and apply SPEC §4.2 (no throttle).

        A user the directory no longer has in scope is `missing`. The request is audited
        with the administrator's name beside the status change the sync itself records.

        Raises:
            PermissionDenied: the actor may not sync users.
            NotFound: no such user.
            InvalidInput: the user's source is not a directory (its client provisions it).
            UpstreamError: the directory could not be read (nothing changed).
        """
        actor.require(Permission.SYNC_USER)
        with self._store.reading() as session:
            user = stored_user(session, user_id, lock=False)
            source_id, external_id = user.source_id, user.external_id
        source = self._config.source(source_id) if self._has(source_id) else None
        if not isinstance(source, LdapSource | AdSource):
            raise InvalidInput("user", f"source {source_id} is provisioned by its client, not read")
        # The directory is read outside any transaction: no lock waits on a network answer.
        entry = self._directories[source.id].read_user(external_id)
        with self._store.writing() as session:
            if entry is None:
                result = self._users.apply_missing(session, source.id, external_id, Trigger.SINGLE)
            else:
                report = to_source_user(entry, source, self._clock())
                result = self._users.apply_report(session, source.id, report, Trigger.SINGLE)
            details = {"outcome": result.outcome.value}
            self._users.audit_action(session, actor, user_id, "user.sync_requested", details)
        return result

    def _has(self, source_id: str) -> bool:
        return any(s.id == source_id for s in self._config.sources)
