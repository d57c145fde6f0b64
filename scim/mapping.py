"""SCIM resources to the provisioning service's values and back: pure functions (STYLE habit 8).

A source's client gets back what it sent: the stored document, with the server's `id`, `meta`
and the read-only `groups`. Its `active` is the client's own value; the gateway's status (an
administrator may have disabled the user) is shown only in the admin view, with the rest of
what the gateway owns (SPEC §3: gateway-owned data is never exposed to a provisioning client).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scim2_models import Context, Group, InvalidValueException, Resource

from gateway.engine.plan import Email
from gateway.users.provisioning import GroupInput, GroupRecord, UserInput, UserRecord
from scim.schemas import GATEWAY_SCHEMA, AdminUser

#: RFC 7643 §4.1.2 phoneNumbers types that receive SMS; the others (work, home, other, none)
#: are voice numbers. Fax and pager numbers are neither.
_SMS_TYPES = frozenset({"mobile"})
_NO_PHONE_TYPES = frozenset({"fax", "pager"})
#: What the server keeps out of a stored document: its own attributes, and the password.
_NOT_STORED = ("id", "meta", "groups", "password")


def version_tag(version: int) -> str:
    """RFC 7644 §3.14: a weak entity tag."""
    return f'W/"{version}"'


def version_of(tag: str | None) -> int | None:
    """The version an If-Match entity tag names, or None when there is none; a tag this
    server never issued names version -1, which no resource has (the precondition fails)."""
    if tag is None:
        return None
    digits = tag.removeprefix("W/").strip('"')
    if not digits.isdigit():
        return -1
    return int(digits)


def user_input(resource: Resource[Any]) -> UserInput:
    """What a client's User resource says, in the service's terms."""
    document = resource.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    for key in _NOT_STORED:
        document.pop(key, None)
    user_name = getattr(resource, "user_name", None)
    if not isinstance(user_name, str) or not user_name.strip():
        raise InvalidValueException(detail="userName is required and must not be blank")
    name = getattr(resource, "name", None)
    emails = tuple(
        Email(str(e.value), e.type, bool(e.primary))
        for e in getattr(resource, "emails", None) or ()
        if e.value
    )
    sms: list[str] = []
    voice: list[str] = []
    for phone in getattr(resource, "phone_numbers", None) or ():
        if not phone.value:
            continue
        kind = (phone.type or "").casefold()
        if kind in _NO_PHONE_TYPES:
            continue
        # RFC 7643 §2.4: the primary value comes first (the default number, SPEC §3).
        target = sms if kind in _SMS_TYPES else voice
        target.insert(0 if phone.primary else len(target), phone.value)
    password = getattr(resource, "password", None)
    return UserInput(
        user_name=user_name,
        active=getattr(resource, "active", None) is not False,
        document=document,
        external_id=resource.external_id,
        display_name=getattr(resource, "display_name", None),
        given_name=name.given_name if name else None,
        family_name=name.family_name if name else None,
        emails=emails,
        sms_phones=tuple(sms),
        voice_phones=tuple(voice),
        password=password,
    )


def _meta(resource_type: str, created: datetime, updated: datetime, version: int) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": created,
        "lastModified": updated,
        "version": version_tag(version),
    }


def _groups(record: UserRecord) -> list[dict[str, str]] | None:
    if not record.groups:
        return None
    return [
        {"value": group_id, "display": name, "$ref": f"Groups/{group_id}", "type": "direct"}
        for group_id, name in record.groups
    ]


def user_resource(record: UserRecord, model: type[Resource[Any]]) -> Resource[Any]:
    """A user as its own source's client sees it, as an instance of its endpoint's `model`."""
    view = record.view
    body: dict[str, Any] = dict(view.document or {"userName": view.user_name})
    body["id"] = view.id
    body["meta"] = _meta("User", view.created_at, view.updated_at or view.created_at, view.version)
    if (groups := _groups(record)) is not None:
        body["groups"] = groups
    return model.model_validate(body)


def admin_resource(record: UserRecord) -> Resource[Any]:
    """A user of any source as the admin view shows it: the client's document where there is
    one, the gateway's own data otherwise, and the gateway extension (SPEC §7)."""
    view = record.view
    body: dict[str, Any] = dict(view.document or {})
    body.pop("schemas", None)
    body["id"] = view.id
    body["userName"] = view.user_name
    if view.scim_external_id:
        body["externalId"] = view.scim_external_id
    if view.display_name:
        body["displayName"] = view.display_name
    if view.given_name or view.family_name:
        name = dict(body.get("name") or {})
        name.update(
            {
                k: v
                for k, v in (("givenName", view.given_name), ("familyName", view.family_name))
                if v
            }
        )
        body["name"] = name
    if view.emails:
        body["emails"] = [_email(e) for e in view.emails]
    # The gateway's status, whoever set it: this is the state a bind meets.
    body["active"] = view.state.active
    body["meta"] = _meta("User", view.created_at, view.updated_at or view.created_at, view.version)
    if (groups := _groups(record)) is not None:
        body["groups"] = groups
    state = view.state
    phones = [
        {"value": p.number, "type": kind, "primary": i == 0, "manual": p.manual}
        for kind, numbers in (("sms", view.sms_phones), ("voice", view.voice_phones))
        for i, p in enumerate(numbers)
        if p.number
    ]
    body[GATEWAY_SCHEMA] = {
        "source": view.source_id,
        "status": state.status.value,
        "disabledBy": state.disabled_by.value if state.disabled_by else None,
        "reason": state.reason.value if state.reason else None,
        "pendingDeletionSince": state.pending_deletion_since,
        "lastSync": view.last_sync_at,
        "lastAuthentication": view.last_auth_at,
        "phones": phones or None,
    }
    return AdminUser.model_validate(_without_nulls(body))


def _email(email: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in email.items() if v is not None and v is not False}


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (_without_nulls(v) if isinstance(v, dict) else v)
        for k, v in body.items()
        if v is not None
    }


def group_input(resource: Resource[Any]) -> GroupInput:
    display_name = getattr(resource, "display_name", None)
    if not isinstance(display_name, str) or not display_name.strip():
        raise InvalidValueException(detail="displayName is required and must not be blank")
    members: dict[str, str | None] = {}
    for member in getattr(resource, "members", None) or ():
        if member.type is not None and member.type.casefold() != "user":
            raise InvalidValueException(detail="members must be users of this source")
        if not member.value:
            raise InvalidValueException(detail="a member needs a value (the user's id)")
        members[member.value] = member.display
    return GroupInput(display_name, resource.external_id, tuple(members.items()))


def group_resource(record: GroupRecord) -> Resource[Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "displayName": record.display_name,
        "meta": _meta("Group", record.created_at, record.updated_at, record.version),
    }
    if record.external_id:
        body["externalId"] = record.external_id
    if record.members:
        body["members"] = [
            _without_nulls(
                {"value": user_id, "display": display, "type": "User", "$ref": f"Users/{user_id}"}
            )
            for user_id, display in record.members
        ]
    return Group.model_validate(body)
