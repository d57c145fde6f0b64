"""Administrators' actions on one user (SPEC §4.4, §7): view, disable, enable, phones, notes,
devices.

Each method is one admin API request and so one unit of work: it opens its own transaction,
checks the actor's role first (`gateway.engine.roles`), and writes an audit event for every
change. Status changes are the engine's (`gateway.engine.status`): an enable that the source
forbids is refused.

Blocking: every method does database I/O. Callers on an event loop run them in a thread pool.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.engine import phones as phone_rules
from gateway.engine import status as rules
from gateway.engine.phones import PhoneEntry, PhoneKind
from gateway.engine.roles import Permission
from gateway.errors import InvalidInput, NotFound
from gateway.users.applier import audit, touch
from gateway.users.names import name_key
from gateway.users.records import UserView, phones_of, state_of, view_of, write_phones
from gateway.users.service import Actor, Clock, change_state, stored_user, utcnow
from store import users as queries
from store.db import Store
from store.models import Device


@dataclass(frozen=True)
class DeviceView:
    id: str
    kind: str
    label: str
    registered_at: datetime


class UserAdministration:
    """What administrators do to one user record, each call its own unit of work."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self._store = store
        self._clock = clock

    def get(self, actor: Actor, user_id: str) -> UserView:
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            return view_of(stored_user(session, user_id, lock=False))

    def find(self, actor: Actor, source_id: str, user_name: str) -> UserView | None:
        """The stored user of a source with this user name (case-insensitive), if any."""
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            user = queries.find_by_user_name_key(session, source_id, name_key(user_name))
            return view_of(user) if user else None

    def disable(self, actor: Actor, user_id: str, *, comment: str | None = None) -> UserView:
        """Manual disable: always allowed (SPEC §4.4)."""
        actor.require(Permission.DISABLE_USER)
        return self._change_state(
            actor, user_id, rules.admin_disable, "user.disabled_by_admin", comment
        )

    def enable(self, actor: Actor, user_id: str, *, comment: str | None = None) -> UserView:
        """Manual enable (SPEC §4.4).

        Raises:
            EnableRefused: the source reports the user disabled, expired or missing.
        """
        actor.require(Permission.ENABLE_USER)
        return self._change_state(
            actor, user_id, rules.admin_enable, "user.enabled_by_admin", comment
        )

    def _change_state(
        self,
        actor: Actor,
        user_id: str,
        rule: Callable[[rules.RecordState], rules.RecordState],
        action: str,
        comment: str | None,
    ) -> UserView:
        with self._store.writing() as session:
            user = stored_user(session, user_id)
            old = state_of(user)
            new = rule(old)
            now = self._clock()
            change_state(
                session, user, old, new, now, actor=actor.name, action=action, comment=comment
            )
            return view_of(user)

    def edit_phone(
        self, actor: Actor, user_id: str, kind: PhoneKind, index: int, number: str
    ) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.edited", lambda e: phone_rules.admin_edit(e, index, number)
        )

    def add_phone(self, actor: Actor, user_id: str, kind: PhoneKind, number: str) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.added", lambda e: phone_rules.admin_add(e, number)
        )

    def delete_phone(self, actor: Actor, user_id: str, kind: PhoneKind, index: int) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.deleted", lambda e: phone_rules.admin_delete(e, index)
        )

    def reset_phone(self, actor: Actor, user_id: str, kind: PhoneKind, index: int) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.reset", lambda e: phone_rules.admin_reset(e, index)
        )

    def _change_phones(
        self,
        actor: Actor,
        user_id: str,
        kind: PhoneKind,
        action: str,
        change: Callable[[tuple[PhoneEntry, ...]], tuple[PhoneEntry, ...]],
    ) -> UserView:
        actor.require(Permission.EDIT_PHONES)
        with self._store.writing() as session:
            user = stored_user(session, user_id)
            before = phones_of(user)[kind]
            try:
                after = change(before)
            except IndexError as exc:
                raise InvalidInput(f"{kind.value}_phones", "no phone number at that index") from exc
            except phone_rules.InvalidPhoneNumber as exc:
                raise InvalidInput(f"{kind.value}_phones", str(exc)) from exc
            write_phones(user, kind, after)
            now = self._clock()
            touch(user, now)
            audit(session, user, now, actor.name, action, {"kind": kind.value})
            return view_of(user)

    def set_notes(self, actor: Actor, user_id: str, notes: str | None) -> UserView:
        actor.require(Permission.EDIT_NOTES)
        with self._store.writing() as session:
            user = stored_user(session, user_id)
            user.admin_notes = notes
            now = self._clock()
            touch(user, now)
            audit(session, user, now, actor.name, "user.notes_changed", {})
            return view_of(user)

    def register_device(
        self, actor: Actor, user_id: str, *, kind: str, label: str, data: Mapping[str, Any]
    ) -> str:
        """Register an authenticator for a user (gateway-owned data). Returns its id."""
        actor.require(Permission.MANAGE_DEVICES)
        with self._store.writing() as session:
            user = stored_user(session, user_id)
            now = self._clock()
            device = Device(kind=kind, label=label, registered_at=now, data=dict(data))
            user.devices.append(device)
            session.flush()
            audit(session, user, now, actor.name, "device.registered", {"kind": kind})
            return device.id

    def devices(self, actor: Actor, user_id: str) -> list[DeviceView]:
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            user = stored_user(session, user_id, lock=False)
            return [DeviceView(d.id, d.kind, d.label, d.registered_at) for d in user.devices]

    def remove_device(self, actor: Actor, user_id: str, device_id: str) -> None:
        """Remove a registered authenticator (gateway-owned data).

        Raises:
            NotFound: no such user, or the user has no such device.
        """
        actor.require(Permission.MANAGE_DEVICES)
        with self._store.writing() as session:
            user = stored_user(session, user_id)
            device = next((d for d in user.devices if d.id == device_id), None)
            if device is None:
                raise NotFound(f"user {user_id} has no device {device_id}")
            user.devices.remove(device)
            audit(session, user, self._clock(), actor.name, "device.removed", {"kind": device.kind})
