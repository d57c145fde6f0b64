"""`Directory`: the connector of one `ldap` or `ad` source (SPEC §2, §5, §6).

The user's password check (`verify`) runs on the reactor (`ReactorBinds`, ldaptor's codec):
it is the hot path of every bind. Everything else is blocking and thread-safe: callers run it
in worker threads (STYLE habit 12). Two ldap3 pools of at most ``pool_size`` connections
each: *service* connections, bound as the service account, for searches; *password-change*
connections, never bound as the service account, bound as the user whose password changes.
A pooled connection that the server has dropped is replaced and the operation retried once,
transparently; a timeout is never retried (the caller's deadline counts). A connection to a
fallback server is retired once the preferred server's cool-down is over (see
`gateway.directory.servers`), and one idle for longer than `MAX_IDLE_SECONDS` is replaced,
since firewalls and AD (MaxConnIdleTime) drop idle connections silently. Both clients share
one `Connector`, so they share the servers' order and cool-downs.

The bulk read (`read_scope`) uses its own connection, outside the pools, so a long sync never
holds a connection that binds and lookups need.
"""

import logging
import math
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import ldap3
from twisted.internet.defer import Deferred, fail
from twisted.python.threadable import isInIOThread

from gateway.config import AdSource, LdapSource
from gateway.directory.attributes import requested_attributes
from gateway.directory.completeness import Shortfall, incomplete, shortfall_of
from gateway.directory.connect import Connector, Link, close_quietly
from gateway.directory.dn import dn_key, is_within
from gateway.directory.entry import OBJECT_GUID, DirectoryEntry, decode_entry
from gateway.directory.errors import (
    ADMIN_LIMIT_EXCEEDED,
    INVALID_DN_SYNTAX,
    LIBRARY_ERRORS,
    NO_SUCH_OBJECT,
    REFERRAL,
    SIZE_LIMIT_EXCEEDED,
    Failure,
    check_search,
    classify,
    translate,
)
from gateway.directory.filters import equality, escape_octets, escape_value, scope_filter
from gateway.directory.names import NameKind, name_assertion
from gateway.directory.outcomes import BindResult, PasswordChange
from gateway.directory.pool import Pool
from gateway.directory.reactor_binds import MAX_IDLE_SECONDS, ReactorBinds
from gateway.errors import IncompleteRead, UpstreamError, UpstreamUnavailable

__all__ = ["MAX_IDLE_SECONDS", "PAGED_RESULTS_OID", "Directory", "RootRead", "ScopeRead"]

log = logging.getLogger(__name__)

#: RFC 2696 Simple Paged Results.
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
#: Default cool-down of a server that could not be reached.
FAILOVER_COOLDOWN_SECONDS = 30.0

#: How often a bulk read opens a connection again after losing one between pages.
READ_RETRIES = 2
#: Ends of a one-user search that leave a root unread (judged by `_find_one`). A time limit
#: is not among them: it raises UpstreamTimeout, as a read that passed its deadline does.
_ONE_USER_ENDS = (SIZE_LIMIT_EXCEEDED, ADMIN_LIMIT_EXCEEDED, NO_SUCH_OBJECT, REFERRAL)

R = TypeVar("R")
#: (source id, "read" or "bind", seconds, failed)
Observer = Callable[[str, str, float, bool], None]


class Directory:
    """The connector of one directory source."""

    def __init__(
        self,
        source: LdapSource | AdSource,
        *,
        failover_cooldown_seconds: float = FAILOVER_COOLDOWN_SECONDS,
        observe: Observer | None = None,
        reactor: Any = None,
    ) -> None:
        """
        Args:
            source: the source's configuration.
            failover_cooldown_seconds: how long a server that could not be reached is
                skipped before it is preferred again (see `gateway.directory.servers`).
            observe: told of every operation: (source id, "read" or "bind", seconds, failed),
                for the upstream latency and error metrics.
            reactor: the reactor `verify` runs on (default: the global one, imported at the
                first check, never at import).

        No connection is opened until the first operation.
        """
        self._source = source
        self._observe = observe
        self._kind: Literal["ldap", "ad"] = "ad" if isinstance(source, AdSource) else "ldap"
        self._connector = Connector(source, failover_cooldown_seconds)
        self._attributes = list(requested_attributes(source))
        self._scope = scope_filter(source.user_object_class, source.user_filter)
        self._time_limit = max(1, math.ceil(source.operation_timeout_seconds))
        self._closed = False
        self._reactor = reactor
        self._reactor_binds: ReactorBinds | None = None
        self._service: Pool[Link] = Pool(
            f"source {source.id} service connections",
            source.pool_size,
            open=lambda: self._connector.open(service=True),
            close=_close_link,
            stale=self._stale,
            wait_seconds=source.operation_timeout_seconds,
        )
        self._changes: Pool[Link] = Pool(
            f"source {source.id} password-change connections",
            source.pool_size,
            open=lambda: self._connector.open(service=False),
            close=_close_link,
            stale=self._stale,
            wait_seconds=source.operation_timeout_seconds,
        )

    # -- lookups -------------------------------------------------------------------------

    def find_user(self, kind: NameKind, value: str) -> DirectoryEntry | None:
        """Find the one in-scope user with this exact name (case-insensitive).

        Every root is searched (subtree) for ``(&(objectClass=..)<user_filter>(attr=value))``
        with the value escaped; a DN is read with a base search after checking that it lies
        under a root. Aliases are never dereferenced, so nothing outside the roots is reached.

        Returns:
            The entry; None when nobody matches, when the name cannot match (a DN outside
            every root, DOMAIN\\user of another domain, an empty or unencodable value), and
            when several entries match: an ambiguous name never binds (a warning is logged).

        Raises:
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the directory failed.
        """
        if kind is NameKind.DN:
            return self._find_by_dn(value)
        assertion = name_assertion(kind, value, self._source)
        if assertion is None:
            return None
        attribute, text = assertion
        try:
            escaped = escape_value(text)
        except ValueError:
            return None
        return self._find_one(equality(attribute, escaped), f"{kind.value} lookup")

    def read_user(self, external_id: str) -> DirectoryEntry | None:
        """Read a user by the directory's immutable id (entryUUID, objectGUID, ...), in scope.

        Returns:
            The entry, or None: deleted, moved out of scope, or not an id at all.

        Raises:
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the directory failed.
        """
        if not external_id:
            return None
        if self._source.id_attribute.lower() == OBJECT_GUID:
            try:
                raw = uuid.UUID(external_id).bytes_le
            except ValueError:
                return None
            # Binary value: every octet escaped (RFC 4515 §3), in objectGUID's byte order.
            escaped = escape_octets(raw)
        else:
            try:
                escaped = escape_value(external_id)
            except ValueError:
                return None
        return self._find_one(equality(self._source.id_attribute, escaped), "read by id")

    def read_scope(self, page_size: int | None = None, *, count_only: bool = False) -> "ScopeRead":
        """Every user in scope, read page by page with Simple Paged Results (RFC 2696).

        The control is sent as critical: a server without it fails the read rather than
        returning a silently truncated list. Entries found under two overlapping roots come
        once; entries without a usable id are skipped with a warning. A connection lost
        between pages is opened again (the next server if need be) and that root read again
        from its start, at most `READ_RETRIES` times: a paged-results cookie belongs to its
        connection.

        The read is complete (`ScopeRead.complete`) only once iterating it has ended without
        an error: every root answered success on its last page, every page carried the
        paged-results control, and the last cookie was empty. Anything else raises, and
        what was yielded before stays valid but proves nobody gone (SPEC §5.3).

        Args:
            page_size: entries per page (default: the source's page_size).
            count_only: ask for the id attribute only (a connection test counts the scope).

        Raises (while iterating):
            IncompleteRead: a limit, a missing root, a referral, paging refused or ignored,
                a cookie refused, a connection lost between pages after the retries.
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the directory failed.
        """
        if self._closed:
            raise UpstreamUnavailable(f"source {self._source.id}: the connector is closed")
        attributes = [self._source.id_attribute] if count_only else self._attributes
        return ScopeRead(
            lambda roots: self._scan(page_size or self._source.page_size, attributes, roots)
        )

    def _scan(
        self, size: int, attributes: list[str], roots: list["RootRead"]
    ) -> Iterator[DirectoryEntry]:
        link = self._connector.open(service=True)
        seen: set[str] = set()
        retries = READ_RETRIES
        try:
            for root in self._source.roots:
                while True:
                    try:
                        scanned = self._scan_root(link, root, size, attributes, seen)
                        pages, count = yield from scanned
                        break
                    except _Dropped as dropped:
                        _close_link(link)
                        if retries == 0:
                            raise self._incomplete(
                                Shortfall.CONNECTION_LOST, link.url, root, dropped.entries
                            ) from dropped.__cause__
                        retries -= 1
                        log.warning(
                            "source %s: the connection to %s was lost during the read of %s;"
                            " reading that root again",
                            self._source.id,
                            link.url,
                            root,
                        )
                        try:
                            link = self._connector.open(service=True)
                        except UpstreamError as exc:
                            if not seen and not roots:
                                raise  # nothing was read: no server answers, as it says
                            raise self._incomplete(
                                Shortfall.CONNECTION_LOST, link.url, root, dropped.entries
                            ) from exc
                roots.append(RootRead(root, count, pages))
        finally:
            _close_link(link)

    def _scan_root(
        self, link: Link, root: str, size: int, attributes: list[str], seen: set[str]
    ) -> Generator[DirectoryEntry, None, tuple[int, int]]:
        """Read one root to its end; returns (pages, entries of the root).

        Raises:
            _Dropped: the connection dropped (the caller opens another and reads again).
            IncompleteRead, UpstreamError: as `read_scope`.
        """
        cookie: bytes | None = None
        pages = count = 0
        while True:
            try:
                responses, result = self._search_on(
                    link, root, ldap3.SUBTREE, self._scope, attributes, "paged search",
                    paged=(size, cookie), check=False,
                )  # fmt: skip
            except LIBRARY_ERRORS as exc:
                self._operation_failed(link, exc)
                if classify(exc) is Failure.DROPPED:
                    raise _Dropped(count) from exc
                raise translate(exc, self._source.id, link.url, "paged search") from exc
            code = result["result"]
            shortfall = shortfall_of(
                code,
                paged=True,
                cookie_sent=cookie is not None,
                message=str(result.get("message") or ""),
            )
            if (
                shortfall is None
                and self._kind == "ldap"
                and any(r.get("type") == "searchResRef" for r in link.connection.response or ())
            ):
                # Entries under a referral object are on another server: unread. (Active
                # Directory answers every search of a domain root with references to its
                # DNS and configuration partitions, where no user lives: not counted there.)
                shortfall = Shortfall.REFERRAL_INSIDE
            if shortfall is not None:
                # What came with it is real (slapd sends what fits a size limit): yielded.
                yield from self._unseen(responses, seen)
                raise self._incomplete(shortfall, link.url, root, count + len(responses))
            description = str(result["description"])
            check_search(code, description, self._source.id, link.url, "paged search")
            pages += 1
            control = (result.get("controls") or {}).get(PAGED_RESULTS_OID)
            if control is None:
                raise self._incomplete(Shortfall.PAGING_IGNORED, link.url, root, count)
            count += len(responses)
            yield from self._unseen(responses, seen)
            cookie = (control.get("value") or {}).get("cookie") or None
            if not cookie:
                return pages, count

    def _unseen(self, responses: list[dict[str, Any]], seen: set[str]) -> Iterator[DirectoryEntry]:
        """The entries of a page not yielded before (overlapping roots, a root read again)."""
        for entry in self._decode_all(responses):
            if entry.external_id not in seen:
                seen.add(entry.external_id)
                yield entry

    def _incomplete(
        self, shortfall: Shortfall, url: str, root: str, entries: int, level: int = logging.ERROR
    ) -> IncompleteRead:
        """The error for a read that `shortfall` stopped, logged: an error for a bulk read (a
        job fails), a warning for a one-user read (that attempt decides from the store)."""
        error = incomplete(
            shortfall,
            source_id=self._source.id,
            url=url,
            root=root,
            entries=entries,
            kind=self._kind,
            bind_dn=self._source.bind_dn,
            timeout_seconds=self._time_limit,
            page_size=self._source.page_size,
        )
        log.log(level, "%s", error)
        return error

    def supports_paged_results(self) -> bool:
        """Whether the server lists Simple Paged Results in the RootDSE's supportedControl.

        Raises:
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the directory failed.
        """

        def read(link: Link) -> bool:
            responses, _ = self._search_on(
                link, "", ldap3.BASE, "(objectClass=*)", ["supportedControl"], "RootDSE read"
            )
            values = [
                bytes(value).decode(errors="replace").strip()
                for response in responses
                for name, raw in response["raw_attributes"].items()
                if name.lower() == "supportedcontrol"
                for value in raw
            ]
            return PAGED_RESULTS_OID in values

        return self._run(self._service, "RootDSE read", read)

    # -- passwords -------------------------------------------------------------------------

    def verify(self, dn: str, password: str) -> "Deferred[BindResult]":
        """Check a user's password with a simple bind as `dn` (SPEC §2, §6), on the reactor.

        Call it on the reactor's thread. The bind runs on a connection that is not the
        service account's. An empty password is an unauthenticated bind (RFC 4513 §5.1.2)
        and never leaves the gateway; neither does a password SASLprep (RFC 4013, applied as
        RFC 4513 §5.1.1 asks) refuses or maps to nothing, nor a DN outside the source's
        roots: all are INVALID_CREDENTIALS. OpenLDAP's password policy control and AD's
        ``data`` code are decoded (see `classify_bind`); the directory's message is never
        returned, raised or logged.

        Args:
            dn: the DN a search of this source returned.
            password: the password the client sent.

        Returns:
            A Deferred firing with the decoded outcome (only OK is a successful
            authentication), or failing with:
            UpstreamUnavailable: no server answered, or it was busy, or this is closed.
            UpstreamTimeout: the bind got no answer within operation_timeout_seconds.
            UpstreamError: the directory answered in a way that says nothing about the user.
        """
        binds = self._reactor_binds
        if binds is None:
            if self._closed:
                return fail(
                    UpstreamUnavailable(f"source {self._source.id}: the connector is closed")
                )
            reactor = self._reactor
            if reactor is None:
                # Imported here, not at module level: the runtime installs its reactor first.
                from twisted.internet import reactor as installed

                reactor = installed
            binds = self._reactor_binds = ReactorBinds(
                self._source, self._connector, reactor, observe=self._observe
            )
        return binds.verify(dn, password)

    def change_password(self, dn: str, old: str, new: str) -> PasswordChange:
        """Change a user's password in the directory, bound as that user (RFC 3062; for AD the
        unicodePwd delete-and-add that a user may make of their own password).

        Raises:
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the directory failed.
        """
        if not old or not new or not is_within(dn, self._source.roots):
            return PasswordChange.WRONG_PASSWORD

        def change(link: Link) -> PasswordChange:
            connection = link.connection
            connection.user = dn
            connection.authentication = ldap3.SIMPLE
            connection.password = old.encode("utf-8")
            try:
                connection.bind(read_server_info=False)
            finally:
                connection.password = None
            if connection.result["result"] != 0:
                return PasswordChange.WRONG_PASSWORD
            if self._kind == "ad":
                done = connection.extend.microsoft.modify_password(dn, new, old)
            else:
                done = connection.extend.standard.modify_password(dn, old, new)
            # The directory's message (a password policy's reason) is not passed on.
            return PasswordChange.CHANGED if done is True else PasswordChange.REJECTED

        return self._run(self._changes, "password change", change)

    def close(self) -> "Deferred[None] | None":
        """Close every connection; later operations raise UpstreamUnavailable.

        Returns:
            Called on the reactor's thread, a Deferred that fires once the idle bind
            connections are closed; from another thread None (their closing is scheduled on
            the reactor).
        """
        self._closed = True
        self._service.close()
        self._changes.close()
        binds = self._reactor_binds
        if binds is None:
            return None
        if isInIOThread():  # type: ignore[no-untyped-call]
            return binds.close()
        binds.reactor.callFromThread(binds.close)
        return None

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _find_by_dn(self, dn: str) -> DirectoryEntry | None:
        if dn_key(dn) is None or not is_within(dn, self._source.roots):
            return None

        def search(link: Link) -> list[dict[str, Any]]:
            responses, result = self._search_on(
                link, dn, ldap3.BASE, self._scope, self._attributes, "DN lookup",
                tolerate=(INVALID_DN_SYNTAX,),
            )  # fmt: skip
            return responses if result["result"] == 0 else []

        return self._only(self._run(self._service, "DN lookup", search), "DN lookup")

    def _find_one(self, condition: str, what: str) -> DirectoryEntry | None:
        search_filter = scope_filter(
            self._source.user_object_class, self._source.user_filter, condition
        )

        def search(link: Link) -> list[dict[str, Any]]:
            found: dict[tuple[str, ...], dict[str, Any]] = {}
            unread: IncompleteRead | None = None
            for root in self._source.roots:
                # Two entries are enough to call the name ambiguous.
                responses, result = self._search_on(
                    link, root, ldap3.SUBTREE, search_filter, self._attributes, what,
                    size_limit=2, tolerate=_ONE_USER_ENDS,
                )  # fmt: skip
                code = result["result"]
                if code != 0 and not (code == SIZE_LIMIT_EXCEEDED and len(responses) >= 2):
                    shortfall = shortfall_of(code, paged=False, cookie_sent=False)
                    assert shortfall is not None  # _ONE_USER_ENDS are shortfalls
                    unread = unread or self._incomplete(
                        shortfall, link.url, root, len(responses), level=logging.WARNING
                    )
                for response in responses:
                    key = dn_key(response["dn"])
                    if key is not None:
                        found.setdefault(key, response)
            if unread is not None and not found:
                # Not found, but not everywhere it could be: the user may be in the root that
                # was not read, so this is no evidence of a deletion (a failed read).
                raise unread
            return list(found.values())

        return self._only(self._run(self._service, what, search), what)

    def _only(self, responses: list[dict[str, Any]], what: str) -> DirectoryEntry | None:
        if len(responses) > 1:
            log.warning(
                "source %s: %s is ambiguous (%s match); treated as not found",
                self._source.id,
                what,
                "; ".join(sorted(str(r["dn"]) for r in responses)),
            )
            return None
        entries = self._decode_all(responses)
        return entries[0] if entries else None

    def _decode_all(self, responses: list[dict[str, Any]]) -> list[DirectoryEntry]:
        entries = []
        for response in responses:
            dn = str(response["dn"])
            if not is_within(dn, self._source.roots):
                # Defence in depth: base and scope already keep the search inside the roots.
                log.warning("source %s: ignored %s, outside the roots", self._source.id, dn)
                continue
            entry = decode_entry(
                dn, response["raw_attributes"], self._source.id_attribute, self._source.id
            )
            if entry is not None:
                entries.append(entry)
        return entries

    def _search_on(
        self,
        link: Link,
        base: str,
        scope: str,
        search_filter: str,
        attributes: list[str],
        what: str,
        *,
        size_limit: int = 0,
        paged: tuple[int, bytes | None] | None = None,
        tolerate: tuple[int, ...] = (),
        check: bool = True,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One search on `link`: the entries (not references) and the result.

        Raises:
            LIBRARY_ERRORS: ldap3 failed (the caller translates, after deciding whether to
                retry).
            UpstreamUnavailable, UpstreamTimeout, UpstreamError: the search ended with a code
                that carries no answer (and is not in `tolerate`; never with ``check=False``,
                when the caller judges the code itself).
        """
        connection = link.connection
        connection.search(
            search_base=base,
            search_filter=search_filter,
            search_scope=scope,
            dereference_aliases=ldap3.DEREF_NEVER,
            attributes=attributes,
            size_limit=size_limit,
            time_limit=self._time_limit,
            paged_size=paged[0] if paged else None,
            paged_cookie=paged[1] if paged else None,
            paged_criticality=paged is not None,
        )
        result: dict[str, Any] = connection.result
        if check and result["result"] not in tolerate:
            check_search(
                result["result"], str(result["description"]), self._source.id, link.url, what
            )
        responses = [r for r in connection.response or () if r.get("type") == "searchResEntry"]
        return responses, result

    def _run(self, pool: Pool[Link], what: str, operation: Callable[[Link], R]) -> R:
        """Run `operation` on a pooled connection; once more on a fresh one if the server had
        dropped the pooled one (a restart, an idle timeout)."""
        if self._observe is None:
            return self._attempts(pool, what, operation)
        started = time.monotonic()
        kind = "read" if pool is self._service else "bind"
        try:
            result = self._attempts(pool, what, operation)
        except UpstreamError:
            self._observe(self._source.id, kind, time.monotonic() - started, True)
            raise
        self._observe(self._source.id, kind, time.monotonic() - started, False)
        return result

    def _attempts(self, pool: Pool[Link], what: str, operation: Callable[[Link], R]) -> R:
        for attempt in (1, 2):
            # The retry opens a new connection: when a server dies, every idle connection to
            # it is dead, and another pooled one would fail the same way.
            with pool.lease(fresh=attempt == 2) as lease:
                try:
                    return operation(lease.item)
                except LIBRARY_ERRORS as exc:
                    lease.discard()
                    failure = classify(exc)
                    if attempt == 1 and lease.reused and failure is Failure.DROPPED:
                        log.info(
                            "source %s: %s dropped a pooled connection; reconnecting",
                            self._source.id,
                            lease.item.url,
                        )
                        continue
                    self._operation_failed(lease.item, exc)
                    raise translate(exc, self._source.id, lease.item.url, what) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _operation_failed(self, link: Link, exc: BaseException) -> None:
        failure = classify(exc)
        if failure in (Failure.NO_ANSWER, Failure.DROPPED):
            self._connector.failed(link.server, failure)

    def _stale(self, link: Link, idle_seconds: float) -> bool:
        return (
            bool(link.connection.closed)
            or idle_seconds > MAX_IDLE_SECONDS
            or self._connector.servers.better_than(link.server)
        )


@dataclass(frozen=True)
class RootRead:
    """One root of a complete read: how many entries it held and in how many pages."""

    root: str
    entries: int
    pages: int


class ScopeRead(Iterator[DirectoryEntry]):
    """One read of a source's whole scope (`Directory.read_scope`); iterate it for the entries.

    `complete` turns True only when the iteration has ended without an error; `roots` then
    lists every root with its count. Closing it early gives the connection back.
    """

    def __init__(self, scan: Callable[[list[RootRead]], Iterator[DirectoryEntry]]) -> None:
        self.roots: list[RootRead] = []
        self.complete = False
        self._entries = scan(self.roots)

    def __next__(self) -> DirectoryEntry:
        try:
            return next(self._entries)
        except StopIteration:
            # Only a scan that returned normally (every root, every page) gets here.
            self.complete = True
            raise

    def close(self) -> None:
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()


class _Dropped(Exception):
    """The connection of a bulk read failed; `entries` of the current root had been read."""

    def __init__(self, entries: int) -> None:
        super().__init__(entries)
        self.entries = entries


def _close_link(link: Link) -> None:
    close_quietly(link.connection)
