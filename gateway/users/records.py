"""Translation between store rows and the engine's values, and the read view of a user.

The service plans with engine values (`RecordState`, `PhoneEntry`, `StoredUser`) and writes
rows; these functions are the one place that knows how the two correspond.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.engine.phones import PhoneEntry, PhoneKind
from gateway.engine.plan import SourceUser, StoredUser
from gateway.engine.status import RecordState
from gateway.engine.types import DisabledBy, Reason, SourceStatus, Status
from gateway.users.names import dn_key, name_key
from store.models import PhoneNumber, User


@dataclass(frozen=True)
class PhoneView:
    number: str
    manual: bool


@dataclass(frozen=True)
class UserView:
    """A user record as the fronts and the admin API show it."""

    id: str
    source_id: str
    external_id: str
    user_name: str
    dn: str | None
    display_name: str | None
    given_name: str | None
    family_name: str | None
    emails: tuple[dict[str, Any], ...]
    groups: tuple[str, ...]
    policy: Mapping[str, Any]
    state: RecordState
    sms_phones: tuple[PhoneView, ...]
    voice_phones: tuple[PhoneView, ...]
    created_at: datetime
    last_sync_at: datetime | None
    last_auth_at: datetime | None
    admin_notes: str | None
    version: int
    updated_at: datetime | None = None
    #: A SCIM client's externalId, and its resource as it sent it (SCIM sources only).
    scim_external_id: str | None = None
    document: Mapping[str, Any] | None = None


class StatusColumns(Protocol):
    """The status columns of a record, on an ORM `User` or a Core row alike."""

    @property
    def status(self) -> str: ...
    @property
    def source_status(self) -> str: ...
    @property
    def disabled_by(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def pending_deletion_since(self) -> datetime | None: ...


def state_of(user: StatusColumns) -> RecordState:
    return RecordState(
        status=Status(user.status),
        source_status=SourceStatus(user.source_status),
        disabled_by=DisabledBy(user.disabled_by) if user.disabled_by else None,
        reason=Reason(user.reason) if user.reason else None,
        pending_deletion_since=user.pending_deletion_since,
    )


def phones_of(user: User) -> dict[PhoneKind, tuple[PhoneEntry, ...]]:
    lists: dict[PhoneKind, list[PhoneEntry]] = {kind: [] for kind in PhoneKind}
    for row in sorted(user.phones, key=lambda p: (p.kind, p.position)):
        lists[PhoneKind(row.kind)].append(PhoneEntry(row.number, row.manual))
    return {kind: tuple(entries) for kind, entries in lists.items()}


def snapshot(user: User) -> StoredUser:
    return StoredUser(user.id, user.user_name, state_of(user), user.source_digest, phones_of(user))


def view_of(user: User, *, phones: bool = True) -> UserView:
    """The view of a record; with `phones` False its phone lists are left empty, and the
    relationship unread (a caller that shows no phones saves a query per user)."""
    lists = phones_of(user) if phones else {kind: () for kind in PhoneKind}
    return UserView(
        id=user.id,
        source_id=user.source_id,
        external_id=user.external_id,
        user_name=user.user_name,
        dn=user.dn,
        display_name=user.display_name,
        given_name=user.given_name,
        family_name=user.family_name,
        emails=tuple(user.emails),
        groups=tuple(user.groups),
        policy=dict(user.policy),
        state=state_of(user),
        sms_phones=tuple(PhoneView(e.number, e.manual) for e in lists[PhoneKind.SMS]),
        voice_phones=tuple(PhoneView(e.number, e.manual) for e in lists[PhoneKind.VOICE]),
        created_at=user.created_at,
        last_sync_at=user.last_sync_at,
        last_auth_at=user.last_auth_at,
        admin_notes=user.admin_notes,
        version=user.version,
        updated_at=user.updated_at,
        scim_external_id=user.scim_external_id,
        document=user.scim_document,
    )


def source_columns(data: SourceUser) -> dict[str, Any]:
    """The `users` columns that hold a source's data (SPEC §3, source-owned)."""
    return {
        "user_name": data.user_name,
        "user_name_key": name_key(data.user_name),
        "dn": data.dn,
        "dn_key": dn_key(data.dn) if data.dn else None,
        "upn_key": name_key(data.upn) if data.upn else None,
        "display_name": data.display_name,
        "given_name": data.given_name,
        "family_name": data.family_name,
        "emails": [{"value": e.value, "type": e.type, "primary": e.primary} for e in data.emails],
        "groups": list(data.groups),
        "policy": {name: list(values) for name, values in data.policy},
        "scim_external_id": data.scim_external_id,
        "password_hash": data.password_hash,
        "scim_document": json.loads(data.document) if data.document is not None else None,
        "source_status": data.status.value,
        "source_digest": data.digest(),
    }


def write_source_data(user: User, data: SourceUser) -> None:
    for column, value in source_columns(data).items():
        setattr(user, column, value)


def state_columns(state: RecordState) -> dict[str, Any]:
    """The `users` columns that hold a record's status (SPEC §4.1)."""
    return {
        "status": state.status.value,
        "source_status": state.source_status.value,
        "disabled_by": state.disabled_by.value if state.disabled_by else None,
        "reason": state.reason.value if state.reason else None,
        "pending_deletion_since": state.pending_deletion_since,
    }


def phone_rows(
    user_id: str, kind: PhoneKind, entries: Sequence[PhoneEntry]
) -> list[dict[str, Any]]:
    return [
        {"user_id": user_id, "kind": kind.value, "position": i, "number": e.number,
         "manual": e.manual}
        for i, e in enumerate(entries)
    ]  # fmt: skip


def write_state(user: User, state: RecordState, now: datetime) -> None:
    columns = state_columns(state)
    if (user.status, user.disabled_by, user.reason, user.pending_deletion_since) != (
        columns["status"],
        columns["disabled_by"],
        columns["reason"],
        columns["pending_deletion_since"],
    ):
        user.status_changed_at = now
    for column, value in columns.items():
        setattr(user, column, value)


def write_phones(user: User, kind: PhoneKind, entries: Sequence[PhoneEntry]) -> None:
    user.phones = [p for p in user.phones if p.kind != kind.value] + [
        PhoneNumber(kind=kind.value, position=i, number=e.number, manual=e.manual)
        for i, e in enumerate(entries)
    ]
