"""Searching the user store as a directory tree (SPEC §6): the LDAP front's reads.

The tree the LDAP front serves:

    <root DN of each ldap/ad source>        users at the DNs their directory gave them
    <ldap.suffix>
      ou=<source id>                         one container per scim/local source
        uid=<userName>                       its users (`gateway.users.names.member_dn`)

`DirectoryTree.plan(base, scope)` says which sources a search reaches and how; the front
translates its filter for each of them (attribute names differ per source) and
`DirectoryTree.search` runs them all as one keyset-paged query. Filters arrive as neutral
filter nodes (`query.filter`), which the store compiles, so nothing of the client's text
reaches SQL.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from gateway.config import AdSource, Config, LdapSource, SourceConfig
from gateway.users.names import dn_parts, member_dn, parts_key
from gateway.users.records import UserView, view_of
from query.filter import And, Attr, Const, DnSuffix, Equals, Field, Node, Or
from store import search as store_search
from store.db import Store


class Scope(IntEnum):
    """RFC 4511 §4.5.1.2."""

    BASE = 0
    ONE = 1
    SUB = 2


@dataclass(frozen=True)
class Container:
    """A naming context or source container the tree shows as an entry of its own."""

    dn: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """One source a search reaches, and which of its users it can reach.

    `base` is the search base's RDNs when it lies inside the source's own subtree (so only
    users under it qualify), None when the whole source is in reach.
    """

    source: SourceConfig
    scope: Scope
    base: tuple[str, ...] | None

    def narrowing(self, suffix: str) -> Node:
        """The store filter that keeps this target's users (before the exact DN check)."""
        source = Equals(Attr(Field.SOURCE), self.source.id)
        if self.base is None:
            return source
        if isinstance(self.source, LdapSource | AdSource):
            return And((source, DnSuffix(parts_key(self.base))))
        # A scim/local user's DN is uid=<userName>,ou=<id>,<suffix>: the base names one user.
        first = self.base[0]
        if first.startswith("uid=") and len(self.base) == len(_container_parts(self, suffix)) + 1:
            user = first.removeprefix("uid=")
            return And((source, Equals(Attr(Field.USER_NAME), user)))
        return Const(False)


@dataclass(frozen=True)
class Found:
    user: UserView
    dn: str


def _container_parts(target: Target, suffix: str) -> tuple[str, ...]:
    parts = dn_parts(f"ou={target.source.id},{suffix}")
    assert parts is not None
    return parts


def _within(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


class DirectoryTree:
    """The store seen as an LDAP tree; blocking (the front calls it from its thread pool)."""

    def __init__(self, config: Config, store: Store) -> None:
        self._config = config
        self._store = store
        self._suffix = config.ldap.suffix
        self._containers: list[tuple[Container, SourceConfig | None]] = []
        suffix_parts = dn_parts(self._suffix)
        assert suffix_parts is not None  # validated as a DN by the config
        for source in config.sources:
            if not source.enabled:
                continue
            if isinstance(source, LdapSource | AdSource):
                for root in source.roots:
                    parts = dn_parts(root)
                    assert parts is not None
                    self._containers.append((Container(root, parts), source))
            else:
                dn = f"ou={source.id},{self._suffix}"
                parts = dn_parts(dn)
                assert parts is not None
                self._containers.append((Container(dn, parts), source))
        self._containers.append((Container(self._suffix, suffix_parts), None))

    # -- the tree's shape --------------------------------------------------------------------

    def naming_contexts(self) -> list[str]:
        """RootDSE namingContexts: each directory source's roots, then the SCIM/local suffix."""
        contexts: list[str] = []
        for container, source in self._containers:
            is_root = isinstance(source, LdapSource | AdSource)
            if (is_root or source is None) and container.dn not in contexts:
                contexts.append(container.dn)
        return contexts

    def containers(self, base: str, scope: Scope) -> list[Container]:
        """The container entries (naming contexts, source OUs) a search of `base` reaches."""
        parts = self._parts(base)
        seen: set[tuple[str, ...]] = set()
        found: list[Container] = []
        for container, _ in self._containers:
            if container.parts in seen:
                continue
            if _reaches(parts, container.parts, scope):
                seen.add(container.parts)
                found.append(container)
        return found

    def user_dn(self, view: UserView) -> str:
        """The DN a user is served under (SPEC §6 naming contexts)."""
        source = self._config.source(view.source_id)
        if isinstance(source, LdapSource | AdSource) and view.dn:
            return view.dn
        return member_dn(view.user_name, view.source_id, self._suffix)

    def plan(self, base: str, scope: Scope) -> list[Target]:
        """The sources a search of `base` with `scope` reaches (RFC 4511 §4.5.1.2).

        An empty base with a subtree or one-level scope reaches every source.

        Raises:
            ValueError: `base` is not a DN.
        """
        parts = self._parts(base)
        targets: list[Target] = []
        for source in self._config.sources:
            if not source.enabled:
                continue
            for container, owner in self._containers:
                if owner is not source:
                    continue
                if _within(parts, container.parts):
                    # Inside the source's subtree: only users at or under the base qualify.
                    targets.append(Target(source, scope, parts))
                    break
                if _within(container.parts, parts) and scope is not Scope.BASE:
                    # The base is above the source: every user of it is under the base (an
                    # exact check still applies for a one-level scope).
                    targets.append(Target(source, scope, parts if scope is Scope.ONE else None))
                    break
        return targets

    def _parts(self, base: str) -> tuple[str, ...]:
        if not base.strip():
            return ()
        parts = dn_parts(base)
        if parts is None:
            raise ValueError("not a distinguished name")
        return parts

    # -- searching ---------------------------------------------------------------------------

    def search(
        self,
        targets: Sequence[tuple[Target, Node]],
        *,
        after_id: str | None,
        limit: int,
        batch: int = 200,
    ) -> Iterator[Found]:
        """Users matching, in id order, after `after_id`; at most `limit` of them.

        Each target pairs a reach (`plan`) with the client's filter translated for that
        source. Rows are read in batches of `batch`, so a caller that stops early (a size or
        time limit, an abandoned operation) never has the whole result in memory.
        """
        if not targets or limit <= 0:
            return
        where = Or(tuple(And((t.narrowing(self._suffix), node)) for t, node in targets))
        clause = store_search.where_clause(where, self._store.dialect)
        given = 0
        cursor = after_id
        while given < limit:
            with self._store.reading() as session:
                rows = store_search.search_users(session, clause, after_id=cursor, limit=batch)
                views = [view_of(row) for row in rows]
            for view in views:
                cursor = view.id
                dn = self.user_dn(view)
                if not any(
                    _user_in_reach(t, dn) for t, _ in targets if t.source.id == view.source_id
                ):
                    continue
                yield Found(view, dn)
                given += 1
                if given >= limit:
                    return
            if len(rows) < batch:
                return

    def find_dn(self, dn: str) -> Found | None:
        """The user served at exactly this DN, if any."""
        for target in self.plan(dn, Scope.BASE):
            found = list(self.search([(target, And(()))], after_id=None, limit=1))
            if found:
                return found[0]
        return None


def _reaches(base: tuple[str, ...], entry: tuple[str, ...], scope: Scope) -> bool:
    if scope is Scope.BASE:
        return entry == base
    if scope is Scope.ONE:
        return len(entry) == len(base) + 1 and _within(entry, base)
    return _within(entry, base)


def _user_in_reach(target: Target, dn: str) -> bool:
    if target.base is None:
        return True
    parts = dn_parts(dn)
    return parts is not None and _reaches(target.base, parts, target.scope)
