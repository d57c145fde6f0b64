"""What the admin API shows of sources, settings and the audit log (SPEC §4.4, §7, §8).

Users and jobs have their own services (`gateway.users`, `gateway.lookup`, `gateway.jobs`);
this module covers the rest: the configured sources (secrets left out), testing a directory
source's servers one by one, the effective settings, and reading the audit log.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.config import AdSource, Config, LdapSource, NotificationsConfig, SourceConfig
from gateway.directory import Directory
from gateway.engine.roles import Permission
from gateway.errors import InvalidInput, NotFound, UpstreamError
from gateway.users import Actor, Clock
from store import users as user_queries
from store.db import Store

#: Fields of a source's configuration that never leave the gateway.
_SECRET_FIELDS = frozenset({"bind_password", "token_hash", "password_hash"})


@dataclass(frozen=True)
class ServerCheck:
    """One server of a directory source, as a connection test found it."""

    url: str
    #: The server answered and the service account bound.
    ok: bool
    seconds: float
    #: Whether its RootDSE lists Simple Paged Results (1.2.840.113556.1.4.319); None when
    #: the server could not be asked.
    paged_results: bool | None
    #: A paged read of the scope returned an entry (its DN), or None (empty scope or no read).
    sample_dn: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ConnectionTest:
    source_id: str
    #: At least one server answered, bound, and supports paged results (bulk sync can run).
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
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
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
        account, read whether it supports paged results, and read one page of the scope.

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
        sample: str | None = None
        error: str | None = None
        if paged:
            users = directory.iter_users(page_size=1)
            try:
                first = next(users, None)
                sample = first.dn if first is not None else None
            except UpstreamError as exc:
                error = f"paged read of the scope failed: {exc}"
            finally:
                close = getattr(users, "close", None)
                if close is not None:
                    close()
        else:
            error = "the server does not support Simple Paged Results: bulk sync cannot run"
        directory.close()
        return ServerCheck(url, error is None, time.monotonic() - started, paged, sample, error)

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
