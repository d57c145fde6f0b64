"""The admin API's JSON shapes (docs/admin-api.md), as pydantic models.

One description serves three readers: the front validates what arrives with the request and
query models, `render` builds what leaves through the response models, and `openapi` draws
the document's schemas from both. Class names are the contract's object names (`User`,
`Job`, ...), which become the OpenAPI component names.

Every string that may reach the store refuses NUL (PostgreSQL text cannot hold it) and is
bounded by the column it lands in, so a bad value is a 400 here, never a driver error.
"""

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
)

from gateway.engine.phones import PhoneKind
from gateway.engine.plan import Outcome
from gateway.engine.types import DisabledBy, Reason, Role, SourceStatus, Status
from gateway.jobs.service import CATEGORIES, JobKind, JobState

#: The largest request body the API reads (docs/admin-api.md, 413 `too_large`).
MAX_BODY_BYTES = 64 * 1024
#: The largest id a path or a filter may name: longer ones cannot exist in the store.
MAX_ID_LENGTH = 255
#: PostgreSQL's `integer`: a job id past it names no job (and must not reach the driver).
MAX_JOB_ID = 2**31 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _finite_json(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A device's free-form data: no NUL in any string and no NaN or infinity (the store keeps
    it as JSON text, which has neither)."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite")
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return value


def _utc(value: datetime) -> datetime:
    # A time given without an offset is read as UTC, the zone of every timestamp the API shows.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"must be one of {', '.join(CATEGORIES)}")
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_no_nul)]
UserName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
Comment = Annotated[str, Field(max_length=1000), AfterValidator(_no_nul)]
NotesText = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
#: The store keeps 64 characters of a number; the engine checks what they may be.
Number = Annotated[str, Field(max_length=64), AfterValidator(_no_nul)]
DeviceKind = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_no_nul)]
Label = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
DeviceData = Annotated[dict[str, JsonValue], AfterValidator(_finite_json)]
#: An audit event's action, e.g. `user.disabled_by_admin` (the store keeps 64 characters).
Action = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)]
Limit = Annotated[int, Field(ge=1, le=1000)]
Since = Annotated[datetime, AfterValidator(_utc)]
Category = Annotated[
    str,
    AfterValidator(_category),
    WithJsonSchema({"type": "string", "enum": list(CATEGORIES)}),
]

#: What each path parameter may be; anything else names nothing, so it is a 404.
PATH_PARAMETERS: Mapping[str, Any] = {
    "source_id": Id,
    "batch_id": Id,
    "user_id": Id,
    "device_id": Id,
    "job_id": Annotated[int, Field(ge=1, le=MAX_JOB_ID)],
    "kind": PhoneKind,
    "index": Annotated[int, Field(ge=0, le=10_000)],
}


# -- requests ----------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: JSON types as they are (no "1" for 1), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NoBody(Body):
    """Routes that take no body accept none, or `{}`."""


class JobStart(Body):
    kind: JobKind
    #: The source of a bulk or refresh job; none for cleanup.
    source: Id | None = None


class CommentBody(Body):
    comment: Comment | None = None


class NotesBody(Body):
    #: The administrator's notes on the user; null clears them.
    notes: NotesText | None


class NumberBody(Body):
    #: As the administrator typed it; blank in an edit deletes the number.
    number: Number


class NewDevice(Body):
    kind: DeviceKind
    label: Label
    data: DeviceData = Field(default_factory=dict)


class Query(BaseModel):
    """Query parameters: text converted to the field's type; unknown parameters refused."""

    model_config = ConfigDict(extra="forbid")


class NoQuery(Query):
    pass


class JobsQuery(Query):
    source: Id | None = None
    kind: JobKind | None = None
    limit: Limit = 50


class JobQuery(Query):
    details: bool = False
    #: Only this details list (with `details=true`).
    category: Category | None = None
    #: At most this many users per details list.
    limit: Limit = 400


class UsersQuery(Query):
    source: Id
    user_name: UserName
    include_unsynchronized: bool = False


class LimitQuery(Query):
    limit: Limit = 100


class AuditQuery(Query):
    source: Id | None = None
    #: A user's id.
    user: Id | None = None
    action: Action | None = None
    since: Since | None = None
    limit: Limit = 100


# -- answers -----------------------------------------------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoAmI(Answer):
    name: str
    role: Role


class Source(Answer):
    """A source's configuration without its secrets; the other fields depend on its kind."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: str
    display_name: str | None
    enabled: bool


class Sources(Answer):
    sources: list[Source]


class RootCheck(Answer):
    root: str
    #: Entries in scope under the root that the read returned.
    entries: int
    pages: int
    #: Paging worked to the end and no limit was hit: the whole root was read.
    complete: bool
    #: What stopped the read, and what to change.
    error: str | None


class ServerCheck(Answer):
    url: str
    ok: bool
    seconds: float
    paged_results: bool | None
    sample_dn: str | None
    error: str | None
    roots: list[RootCheck]


class ConnectionTest(Answer):
    source: str
    ok: bool
    servers: list[ServerCheck]


class Counts(Answer):
    read: int
    added: int
    updated: int
    unchanged: int
    disabled: int
    not_synchronized: int
    deleted: int
    failed: int
    #: Users the mass-disable guard kept from being disabled (state `held`).
    held: int


class JobDetail(Answer):
    user_name: str
    external_id: str | None
    reason: str


class Job(Answer):
    id: int
    kind: JobKind
    source: str | None
    state: JobState
    requested_by: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    batch: str | None
    counts: Counts
    #: Why the mass-disable guard held the run (it waits for a confirm or a discard).
    held_reason: str | None
    #: Only when asked (`details=true`): category → users, at most `limit` each.
    details: dict[str, list[JobDetail]] | None = None


class Jobs(Answer):
    jobs: list[Job]


class Hold(Answer):
    #: Page on with `after` set to the last one's.
    id: int
    user_id: str
    user_name: str
    external_id: str
    #: What the source reported: disabled, expired or missing.
    source_status: str


class Holds(Answer):
    job: int
    holds: list[Hold]


class HoldsQuery(Query):
    #: The id of the last hold of the previous page.
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=10_000)


class Skipped(Answer):
    source: str
    reason: str


class Resync(Answer):
    batch: str
    done: bool
    jobs: list[Job]
    skipped: list[Skipped]


class Phone(Answer):
    #: The slot, as PUT/DELETE/reset name it.
    index: int
    #: Null in a slot an administrator deleted: it stays so that sync does not refill it.
    number: str | None
    manual: bool


class Phones(Answer):
    sms: list[Phone]
    voice: list[Phone]


class User(Answer):
    id: str
    source: str
    external_id: str
    user_name: str
    dn: str | None
    display_name: str | None
    given_name: str | None
    family_name: str | None
    emails: list[dict[str, Any]]
    groups: list[str]
    policy: dict[str, Any]
    status: Status
    disabled_by: DisabledBy | None
    reason: Reason | None
    source_status: SourceStatus
    pending_deletion_since: datetime | None
    created_at: datetime
    updated_at: datetime | None
    last_sync_at: datetime | None
    last_auth_at: datetime | None
    notes: str | None
    version: int
    phones: Phones


class Users(Answer):
    users: list[User]


class UserSync(Answer):
    outcome: Outcome
    #: The record after the sync; null when there is none (a user the source did not add).
    user: User | None


class Device(Answer):
    id: str
    kind: str
    label: str
    registered_at: datetime


class Devices(Answer):
    devices: list[Device]


class AuditEvent(Answer):
    id: int
    at: datetime
    actor: str
    action: str
    source: str | None
    user_id: str | None
    user_name: str | None
    details: dict[str, Any]


class AuditEvents(Answer):
    events: list[AuditEvent]


class Settings(Answer):
    """The effective settings, secrets left out (their presence shown, never their value)."""

    model_config = ConfigDict(extra="allow")


class OpenApiDocument(Answer):
    model_config = ConfigDict(extra="allow")
    openapi: str


class Error(Answer):
    error: str
    detail: str
    #: The input that was refused (400 `invalid_input`).
    field: str | None = None
    #: What the source reports about the user (409 `enable_refused`).
    source_status: SourceStatus | None = None
    #: The job that is running already, when known (409 `job_running`).
    job: int | None = None
