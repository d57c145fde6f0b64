"""The provisioning service: what SCIM and Entra clients do to users and groups (SPEC §4.2, §7).

The SCIM front parses a request into the neutral values below and calls this service; the
service writes through the user service (so the status engine decides every status) and the
group queries, one transaction per request, and answers with records the front renders.

What a source's client sees is its own view: its users and groups only, and not the users it
deleted (they are pending deletion until cleanup purges them: SPEC §4.2, "the user vanishes
from that source's SCIM view"). The admin view sees every user of every source.

Blocking: every method does database I/O (and argon2 for passwords). Callers on an event loop
run them in a thread pool.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.auth.secrets import hash_secret
from gateway.engine.plan import Email, SourceUser
from gateway.engine.types import SourceStatus, Trigger
from gateway.errors import InvalidInput, NameTaken, NotFound, VersionMismatch
from gateway.users.names import name_key
from gateway.users.records import UserView, view_of
from gateway.users.service import Clock, UserService, utcnow
from query.filter import And, Attr, Node
from store import groups as group_queries
from store import search as store_search
from store import users as queries
from store.db import Store
from store.models import Group, User, new_id

_MISSING = SourceStatus.MISSING.value
#: The store's string columns hold at most this many characters (store.models String(255)).
_MAX_TEXT = 255
_MAX_PHONE = 64
#: Resource ids are the gateway's UUIDs (store.models.new_id); anything else names nothing.
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class UserInput:
    """A user as a provisioning client sent it (POST, or the whole new state of a PUT/PATCH)."""

    user_name: str
    active: bool
    #: The client's resource without id, meta, groups and password: returned as it was sent.
    document: Mapping[str, Any]
    external_id: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    emails: tuple[Email, ...] = ()
    sms_phones: tuple[str, ...] = ()
    voice_phones: tuple[str, ...] = ()
    #: A new password in clear (hashed here, never stored or logged in clear); None keeps the
    #: current one (RFC 7643 §7: writeOnly attributes are never returned, so a PUT or PATCH
    #: built from a read cannot carry it back).
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class UserRecord:
    view: UserView
    #: (group id, displayName) of the groups the user is a member of.
    groups: tuple[tuple[str, str], ...] = ()

    @property
    def visible(self) -> bool:
        """Whether the user's source still sees it (not deleted by the source)."""
        return self.view.state.source_status is not SourceStatus.MISSING


@dataclass(frozen=True)
class GroupInput:
    display_name: str
    external_id: str | None = None
    #: The members: (user id, the client's `display` for it or None), users of this source.
    members: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class GroupRecord:
    id: str
    source_id: str
    display_name: str
    external_id: str | None
    #: (user id, the client's `display` or None) of the members, in userName order.
    members: tuple[tuple[str, str | None], ...]
    created_at: datetime
    updated_at: datetime
    version: int


#: The filter that matches every user (RFC 4526's absolute true).
EVERYTHING: Node = And(())


@dataclass(frozen=True)
class Query:
    """A search: the filter, the sort (RFC 7644 §3.4.2.3) and the page (§3.4.2.4)."""

    where: Node = EVERYTHING
    order: Attr | None = None
    descending: bool = False
    offset: int = 0
    limit: int = 100


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    total: int
    items: tuple[T, ...]


class Provisioning:
    def __init__(self, store: Store, users: UserService, *, clock: Clock = utcnow) -> None:
        self._store = store
        self._users = users
        self._clock = clock

    # -- users -----------------------------------------------------------------------------------

    def get_user(self, source_id: str | None, user_id: str) -> UserRecord:
        """One user; `source_id` None is the admin view (every source, deleted ones too).

        Raises:
            NotFound: no such user in this view.
        """
        _known_id(user_id, "user")
        with self._store.reading() as session:
            user = queries.get_user(session, user_id)
            if user is None or not _in_view(user, source_id):
                raise NotFound(f"no user with id {user_id}")
            groups = group_queries.groups_of(session, [user.id])
            return UserRecord(view_of(user), tuple(groups[user.id]))

    def search_users(self, source_id: str | None, query: Query) -> Page[UserRecord]:
        """The users of the view that match, one page of them, and how many match in all.

        Raises:
            InvalidInput: the filter or sort names what the store cannot evaluate.
        """
        with self._store.reading() as session:
            try:
                where = store_search.where_clause(query.where, self._store.dialect)
            except ValueError as exc:
                raise InvalidInput("filter", str(exc)) from exc
            # A source's view shows no phones of the gateway's (the admin view does).
            clause = _user_view_clause(source_id, where)
            total, users = _page_users(session, clause, query, phones=source_id is None)
            groups = group_queries.groups_of(session, [u.id for u in users])
            records = (
                UserRecord(view_of(u, phones=source_id is None), tuple(groups[u.id])) for u in users
            )
            return Page(total, tuple(records))

    def create_user(self, source_id: str, data: UserInput) -> UserRecord:
        """POST /Users (RFC 7644 §3.3). A user this source deleted and still pending deletion,
        with the same userName or externalId, is re-created: same record, same gateway-owned
        data (SPEC §4.2).

        Raises:
            NameTaken: another user of the source has this userName (case-insensitively).
        """
        _check_user(data)
        with self._store.writing() as session:
            return self._create_user(session, source_id, data)

    def create_users(self, source_id: str, inputs: Sequence[UserInput]) -> list[UserRecord]:
        """`create_user` for several users in one unit of work: each user is written exactly
        as a POST would write it, and all of them commit together (an import of many users).

        Raises:
            NameTaken: one of them has a userName another user of the source has; none is
                created.
        """
        for data in inputs:
            _check_user(data)
        with self._store.writing() as session:
            return [self._create_user(session, source_id, data) for data in inputs]

    def _create_user(self, session: Session, source_id: str, data: UserInput) -> UserRecord:
        deleted = _deleted_namesake(session, source_id, data)
        external_id = deleted.external_id if deleted else new_id()
        password_hash = deleted.password_hash if deleted else None
        report = _report(external_id, data, password_hash)
        result = self._users.apply_report(session, source_id, report, Trigger.PROVISIONING)
        assert result.view is not None  # provisioning always adds (engine._provisioning)
        # A new user is in no group yet, and a re-created one left its groups when deleted.
        return UserRecord(result.view)

    def replace_user(
        self, source_id: str, user_id: str, data: UserInput, *, expected_version: int | None
    ) -> UserRecord:
        """PUT, or a PATCH applied to the current state (RFC 7644 §3.5).

        Raises:
            NotFound: no such user in this source's view.
            NameTaken: the new userName belongs to another user of the source.
            VersionMismatch: the user changed since `expected_version`.
        """
        _known_id(user_id, "user")
        _check_user(data)
        with self._store.writing() as session:
            user = queries.get_user(session, user_id)
            if user is None or not _in_view(user, source_id):
                raise NotFound(f"no user with id {user_id}")
            report = _report(user.external_id, data, user.password_hash)
            result = self._users.apply_report(
                session, source_id, report, Trigger.PROVISIONING, expected_version=expected_version
            )
            assert result.view is not None
            groups = group_queries.groups_of(session, [user_id])
            return UserRecord(result.view, tuple(groups[user_id]))

    def delete_user(
        self, source_id: str, user_id: str, *, expected_version: int | None, hard: bool
    ) -> None:
        """DELETE /Users/{id}: pending deletion, or gone now with `hard` (SPEC §4.2).

        Raises:
            NotFound: no such user in this source's view.
            VersionMismatch: the user changed since `expected_version`.
        """
        _known_id(user_id, "user")
        with self._store.writing() as session:
            self._users.provisioning_delete(
                session, source_id, user_id, expected_version=expected_version, hard=hard
            )

    # -- groups ----------------------------------------------------------------------------------

    def get_group(self, source_id: str, group_id: str) -> GroupRecord:
        _known_id(group_id, "group")
        with self._store.reading() as session:
            group = group_queries.get_group(session, group_id)
            if group is None or group.source_id != source_id:
                raise NotFound(f"no group with id {group_id}")
            return self._group_records(session, [group])[0]

    def search_groups(self, source_id: str, query: Query) -> Page[GroupRecord]:
        with self._store.reading() as session:
            try:
                where = store_search.group_where_clause(query.where, self._store.dialect)
            except ValueError as exc:
                raise InvalidInput("filter", str(exc)) from exc
            total, groups = store_search.search_groups_page(
                session,
                and_(Group.source_id == source_id, where),
                order=query.order,
                descending=query.descending,
                offset=query.offset,
                limit=query.limit,
            )
            return Page(total, tuple(self._group_records(session, groups)))

    def create_group(self, source_id: str, data: GroupInput) -> GroupRecord:
        """POST /Groups.

        Raises:
            NameTaken: another group of the source has this displayName.
            InvalidInput: a member is not a user of this source.
        """
        _check_group(data)
        try:
            with self._store.writing() as session:
                now = self._clock()
                key = name_key(data.display_name)
                if group_queries.find_by_name_key(session, source_id, key) is not None:
                    raise NameTaken("displayName", data.display_name)
                group = Group(
                    source_id=source_id,
                    external_id=new_id(),
                    display_name=data.display_name,
                    display_name_key=key,
                    scim_external_id=data.external_id,
                    created_at=now,
                    updated_at=now,
                    version=1,
                )
                session.add(group)
                session.flush()
                self._write_members(session, group, data.members)
                self._audit_group(session, group, "group.created", {})
                return self._group_records(session, [group])[0]
        except IntegrityError as exc:
            # A concurrent POST of the same displayName won the unique constraint.
            raise NameTaken("displayName", data.display_name) from exc

    def replace_group(
        self, source_id: str, group_id: str, data: GroupInput, *, expected_version: int | None
    ) -> GroupRecord:
        _check_group(data)
        try:
            with self._store.writing() as session:
                group = self._group(session, source_id, group_id, expected_version)
                key = name_key(data.display_name)
                holder = group_queries.find_by_name_key(session, source_id, key)
                if holder is not None and holder.id != group.id:
                    raise NameTaken("displayName", data.display_name)
                changed = (group.display_name, group.scim_external_id) != (
                    data.display_name,
                    data.external_id,
                )
                group.display_name = data.display_name
                group.display_name_key = key
                group.scim_external_id = data.external_id
                added, removed = self._write_members(session, group, data.members)
                if changed or added or removed:
                    group.version += 1
                    group.updated_at = self._clock()
                    self._audit_group(
                        session, group, "group.changed", {"added": added, "removed": removed}
                    )
                session.flush()
                return self._group_records(session, [group])[0]
        except IntegrityError as exc:
            raise NameTaken("displayName", data.display_name) from exc

    def delete_group(self, source_id: str, group_id: str, *, expected_version: int | None) -> None:
        with self._store.writing() as session:
            group = self._group(session, source_id, group_id, expected_version)
            self._audit_group(session, group, "group.deleted", {})
            session.delete(group)

    def _group(
        self, session: Session, source_id: str, group_id: str, expected_version: int | None
    ) -> Group:
        _known_id(group_id, "group")
        group = group_queries.get_group(session, group_id, for_update=True)
        if group is None or group.source_id != source_id:
            raise NotFound(f"no group with id {group_id}")
        if expected_version is not None and group.version != expected_version:
            raise VersionMismatch
        return group

    def _write_members(
        self, session: Session, group: Group, members: Sequence[tuple[str, str | None]]
    ) -> tuple[int, int]:
        wanted = dict(members)
        found = group_queries.existing_users(session, group.source_id, wanted, _MISSING)
        unknown = sorted(set(wanted) - found)
        if unknown:
            raise InvalidInput("members", f"not a user of this source: {', '.join(unknown[:5])}")
        return group_queries.set_members(session, group.id, wanted)

    def _group_records(self, session: Session, groups: Sequence[Group]) -> list[GroupRecord]:
        members = group_queries.members_of(session, [g.id for g in groups], hidden_status=_MISSING)
        return [
            GroupRecord(
                id=g.id,
                source_id=g.source_id,
                display_name=g.display_name,
                external_id=g.scim_external_id,
                members=tuple(members[g.id]),
                created_at=g.created_at,
                updated_at=g.updated_at,
                version=g.version,
            )
            for g in groups
        ]

    def _audit_group(
        self, session: Session, group: Group, action: str, details: Mapping[str, Any]
    ) -> None:
        queries.add_audit_event(
            session,
            at=self._clock(),
            actor=f"provisioning:{group.source_id}",
            action=action,
            source_id=group.source_id,
            details={"group_id": group.id, "display_name": group.display_name, **details},
        )


def _in_view(user: User, source_id: str | None) -> bool:
    if source_id is None:
        return True
    return user.source_id == source_id and user.source_status != _MISSING


def _user_view_clause(source_id: str | None, where: ColumnElement[bool]) -> ColumnElement[bool]:
    if source_id is None:
        return where
    return and_(User.source_id == source_id, User.source_status != _MISSING, where)


def _page_users(
    session: Session, where: ColumnElement[bool], query: Query, *, phones: bool
) -> tuple[int, list[User]]:
    try:
        return store_search.search_page(
            session,
            where,
            order=query.order,
            descending=query.descending,
            offset=query.offset,
            limit=query.limit,
            phones=phones,
        )
    except ValueError as exc:
        raise InvalidInput("sortBy", str(exc)) from exc


def _deleted_namesake(session: Session, source_id: str, data: UserInput) -> User | None:
    """The record this source deleted (still pending deletion) that a POST re-creates."""
    holder = queries.find_by_user_name_key(session, source_id, name_key(data.user_name))
    if holder is not None:
        return holder if holder.source_status == _MISSING else None
    if data.external_id:
        for user in queries.find_by_scim_external_id(session, source_id, data.external_id):
            if user.source_status == _MISSING:
                return user
    return None


def _known_id(resource_id: str, kind: str) -> None:
    """A resource id that is not one of the gateway's UUIDs names nothing: NotFound, without
    asking the store (PostgreSQL would refuse a NUL in it)."""
    if not _ID.fullmatch(resource_id):
        raise NotFound(f"no {kind} with id {resource_id[:64]!r}")


def _check_length(field: str, value: str | None) -> None:
    if value is not None and len(value) > _MAX_TEXT:
        raise InvalidInput(field, f"at most {_MAX_TEXT} characters")


def _no_nul(field: str, value: Any) -> None:
    """RFC 7643 §2.3.1 strings are Unicode text; NUL is none a store can keep (PostgreSQL)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(field, "must not contain a NUL character")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if "\x00" in str(key):  # a name in the stored JSON document: no more NUL there
                raise InvalidInput(field or "the resource", "an attribute name holds a NUL")
            _no_nul(f"{field}.{key}" if field else str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_nul(field, item)


def _check_user(data: UserInput) -> None:
    for field_name, value in (
        ("userName", data.user_name),
        ("externalId", data.external_id),
        ("displayName", data.display_name),
        ("name.givenName", data.given_name),
        ("name.familyName", data.family_name),
    ):
        _check_length(field_name, value)
    for number in (*data.sms_phones, *data.voice_phones):
        if len(number) > _MAX_PHONE:
            raise InvalidInput("phoneNumbers.value", f"at most {_MAX_PHONE} characters")
    _no_nul("", data.document)
    if data.password is not None:
        _no_nul("password", data.password)


def _check_group(data: GroupInput) -> None:
    _check_length("displayName", data.display_name)
    _check_length("externalId", data.external_id)
    for _, display in data.members:
        _check_length("members.display", display)
    _no_nul("displayName", data.display_name)
    _no_nul("externalId", data.external_id)
    for member_id, display in data.members:
        _no_nul("members.value", member_id)
        _no_nul("members.display", display)


def _report(external_id: str, data: UserInput, password_hash: str | None) -> SourceUser:
    if data.password is not None:
        if not data.password:
            raise InvalidInput("password", "must not be empty")
        password_hash = hash_secret(data.password)
    return SourceUser(
        external_id=external_id,
        user_name=data.user_name,
        status=SourceStatus.ENABLED if data.active else SourceStatus.DISABLED,
        display_name=data.display_name,
        given_name=data.given_name,
        family_name=data.family_name,
        emails=data.emails,
        sms_phones=data.sms_phones,
        voice_phones=data.voice_phones,
        scim_external_id=data.external_id,
        password_hash=password_hash,
        document=json.dumps(data.document, sort_keys=True, separators=(",", ":")),
    )
