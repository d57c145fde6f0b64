"""What the admin API shows of sources, settings and the audit log (SPEC §4.4, §7, §8).

Users and jobs have their own services (`gateway.users.service`, `gateway.users.lookup`,
`gateway.jobs.service`); this module covers the rest: the configured sources (secrets left
out), testing a directory source's servers one by one, the effective settings, and reading
the audit log.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.config import AdSource, Config, LdapSource, NotificationsConfig, SourceConfig
from gateway.directory import Directory
from gateway.engine.roles import Permission
from gateway.errors import IncompleteRead, InvalidInput, NotFound, UpstreamError
from gateway.users.service import Actor, Clock
from store import users as user_queries
from store.db import Store

#: How long a connection test reads one root of a scope at most.
SCOPE_READ_SECONDS = 60.0
#: Fields of a source's configuration that never leave the gateway.
_SECRET_FIELDS = frozenset({"bind_password", "token_hash", "password_hash"})


@dataclass(frozen=True)
class RootCheck:
    """One root of a source, as a connection test's read of the whole scope found it."""

    root: str
    #: Entries in scope under this root that the read returned (all of them when complete).
    entries: int
    pages: int
    #: The read ended with success on its last page: paging worked to the end, no limit hit.
    complete: bool
    #: What stopped the read (a limit, a missing root, ...) and what to change, when not.
    error: str | None = None


@dataclass(frozen=True)
class ServerCheck:
    """One server of a directory source, as a connection test found it."""

    url: str
    #: The server answered, the service account bound, and every root read to its end.
    ok: bool
    seconds: float
    #: Whether its RootDSE lists Simple Paged Results (1.2.840.113556.1.4.319); None when
    #: the server could not be asked.
    paged_results: bool | None
    #: A paged read of the scope returned an entry (its DN), or None (empty scope or no read).
    sample_dn: str | None = None
    error: str | None = None
    roots: tuple[RootCheck, ...] = ()


@dataclass(frozen=True)
class ConnectionTest:
    source_id: str
    #: At least one server answered, bound, supports paged results and let the whole scope
    #: be read to its end: a bulk sync can run, and can tell who is gone.
    ok: bool
    servers: tuple[ServerCheck, ...]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    source_id: str | None
    user_id: str | None
    user_name: str | None
    details: Mapping[str, Any]


#: Builds a connector for a copy of a source (one URL at a time, for the test).
DirectoryFactory = Callable[[LdapSource | AdSource], Directory]


class Administration:
    """Sources, settings and the audit log, for super admins (SPEC §4.4)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock,
        directory_factory: DirectoryFactory | None = None,
        scope_read_seconds: float = SCOPE_READ_SECONDS,
    ) -> None:
        """
        Args:
            scope_read_seconds: how long a connection test may read one root of the scope.
        """
        self._config = config
        self._store = store
        self._clock = clock
        self._scope_read_seconds = scope_read_seconds
        self._directory_factory = directory_factory or (
            lambda source: Directory(source, failover_cooldown_seconds=0)
        )

    def sources(self, actor: Actor) -> list[dict[str, Any]]:
        actor.require(Permission.MANAGE_SOURCES)
        return [source_view(source) for source in self._config.sources]

    def source(self, actor: Actor, source_id: str) -> dict[str, Any]:
        actor.require(Permission.MANAGE_SOURCES)
        return source_view(self._source(source_id))

    def test(self, actor: Actor, source_id: str) -> ConnectionTest:
        """Try each server of a directory source on its own: reach it, bind as the service
        account, read whether it supports paged results, and read each root of the scope to
        its end as a bulk sync would (ids only, nothing written, at most
        `scope_read_seconds` a root), reporting entries, pages and what stopped a read.

        Raises:
            NotFound: no such source.
            InvalidInput: the source is not a directory (nothing to connect to).
        """
        actor.require(Permission.MANAGE_SOURCES)
        source = self._source(source_id)
        if not isinstance(source, LdapSource | AdSource):
            raise InvalidInput("source", f"{source_id} is a {source.kind} source: no server")
        checks = tuple(self._check(source, url) for url in source.urls)
        ok = any(check.ok and check.paged_results for check in checks)
        return ConnectionTest(source_id, ok, checks)

    def _check(self, source: LdapSource | AdSource, url: str) -> ServerCheck:
        single = source.model_copy(update={"urls": (url,), "pool_size": 1})
        directory = self._directory_factory(single)
        started = time.monotonic()
        try:
            paged = directory.supports_paged_results()
        except UpstreamError as exc:
            return ServerCheck(url, False, time.monotonic() - started, None, error=str(exc))
        finally:
            directory.close()
        if not paged:
            unpaged = "the server does not support Simple Paged Results: bulk sync cannot run"
            return ServerCheck(url, False, time.monotonic() - started, paged, error=unpaged)
        roots = []
        sample: str | None = None
        for root in source.roots:
            check, first = self._read_root(single.model_copy(update={"roots": (root,)}))
            roots.append(check)
            sample = sample or first
        failed = next((r for r in roots if not r.complete), None)
        error = None if failed is None else f"root {failed.root}: {failed.error}"
        return ServerCheck(
            url, failed is None, time.monotonic() - started, paged, sample, error, tuple(roots)
        )

    def _read_root(self, source: LdapSource | AdSource) -> tuple[RootCheck, str | None]:
        """Read one root to its end, counting; (the check, the first entry's DN)."""
        root = source.roots[0]
        directory = self._directory_factory(source)
        give_up = time.monotonic() + self._scope_read_seconds
        entries, first = 0, None
        try:
            read = directory.read_scope(count_only=True)
            try:
                for entry in read:
                    entries += 1
                    first = first or entry.dn
                    if time.monotonic() > give_up:
                        error = (
                            f"the read did not finish within {self._scope_read_seconds:g} s"
                            f" ({entries} entries so far): completeness not proven here; a bulk"
                            " sync reads without this bound"
                        )
                        return RootCheck(root, entries, 0, False, error), first
            finally:
                read.close()
        except UpstreamError as exc:
            counted = exc.entries if isinstance(exc, IncompleteRead) else entries
            return RootCheck(root, counted, 0, False, str(exc)), first
        finally:
            directory.close()
        done = read.roots[0] if read.roots else None
        pages = done.pages if done else 0
        return RootCheck(root, done.entries if done else entries, pages, True), first

    def settings(self, actor: Actor) -> dict[str, Any]:
        """The effective settings (secrets shown as set or not, never their values)."""
        actor.require(Permission.EDIT_SETTINGS)
        config = self._config
        notifications = config.notifications or NotificationsConfig()
        return {
            "store": {"url": config.store.redacted_url, "dialect": self._store.dialect},
            "http": config.http.model_dump(mode="json"),
            "ldap": config.ldap.model_dump(mode="json", exclude={"service_accounts", "tls_key"}),
            "sync": config.sync.model_dump(mode="json"),
            "notifications": {
                "webhook": notifications.webhook_url is not None,
                "webhook_signed": notifications.webhook_secret is not None,
                "smtp_host": notifications.smtp_host,
                "smtp_to": list(notifications.smtp_to),
            },
            "admins": [{"name": a.name, "role": a.role.value} for a in config.admins],
        }

    def audit(
        self,
        actor: Actor,
        *,
        user_id: str | None = None,
        source_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit events, newest first. A user's own history needs only VIEW_USERS."""
        actor.require(Permission.VIEW_USERS if user_id is not None else Permission.VIEW_AUDIT)
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit", "must be between 1 and 1000")
        with self._store.reading() as session:
            events = user_queries.audit_log(
                session,
                user_id=user_id,
                source_id=source_id,
                action=action,
                since=since,
                limit=limit,
            )
            return [
                AuditEntry(
                    e.id, e.at, e.actor, e.action, e.source_id, e.user_id, e.user_name, e.details
                )
                for e in events
            ]

    def _source(self, source_id: str) -> SourceConfig:
        for source in self._config.sources:
            if source.id == source_id:
                return source
        raise NotFound(f"no source with id {source_id}")


def source_view(source: SourceConfig) -> dict[str, Any]:
    """A source's configuration as the admin API shows it: every field but its secrets."""
    view = source.model_dump(mode="json", exclude=set(_SECRET_FIELDS))
    view["kind"] = source.kind
    return view


def directory_ids(config: Config) -> Sequence[str]:
    return [source.id for source in config.directory_sources()]
