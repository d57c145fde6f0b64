"""Pure functions from the services' views to the admin API's JSON (docs/admin-api.md).

Each builds the response model of `scim.admin.models` and dumps it, so what leaves is
exactly what the OpenAPI document describes: timestamps as ISO 8601 UTC, absent values null.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.jobs.service import Hold, JobView, ResyncView
from gateway.jobs.service import JobDetail as JobDetailView
from gateway.operations.admin import AuditEntry
from gateway.operations.admin import ConnectionTest as ConnectionTestView
from gateway.users.admin import DeviceView
from gateway.users.records import PhoneView, UserView
from gateway.users.service import Actor, SyncResult
from scim.admin import models


def whoami(actor: Actor) -> dict[str, Any]:
    assert actor.role is not None  # only administrators get this far
    return models.WhoAmI(name=actor.name, role=actor.role).model_dump(mode="json")


def source(view: Mapping[str, Any]) -> dict[str, Any]:
    return models.Source.model_validate(view).model_dump(mode="json")


def sources(views: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"sources": [source(view) for view in views]}


def connection_test(test: ConnectionTestView) -> dict[str, Any]:
    return models.ConnectionTest(
        source=test.source_id,
        ok=test.ok,
        servers=[
            models.ServerCheck(
                url=check.url,
                ok=check.ok,
                seconds=round(check.seconds, 4),
                paged_results=check.paged_results,
                sample_dn=check.sample_dn,
                error=check.error,
                roots=[
                    models.RootCheck(
                        root=root.root,
                        entries=root.entries,
                        pages=root.pages,
                        complete=root.complete,
                        error=root.error,
                    )
                    for root in check.roots
                ],
            )
            for check in test.servers
        ],
    ).model_dump(mode="json")


def _job(view: JobView, details: Mapping[str, Sequence[JobDetailView]] | None) -> models.Job:
    return models.Job(
        id=view.id,
        kind=view.kind,
        source=view.source_id,
        state=view.state,
        requested_by=view.requested_by,
        started_at=view.started_at,
        ended_at=view.ended_at,
        error=view.error,
        batch=view.batch_id,
        counts=models.Counts(**view.counts.as_dict()),
        held_reason=view.held_reason,
        details=None
        if details is None
        else {
            category: [
                models.JobDetail(user_name=d.user_name, external_id=d.external_id, reason=d.reason)
                for d in rows
            ]
            for category, rows in details.items()
        },
    )


def job(
    view: JobView, details: Mapping[str, Sequence[JobDetailView]] | None = None
) -> dict[str, Any]:
    """A `Job`; its `details` member only when `details` is given (the contract's `?`)."""
    answer = _job(view, details).model_dump(mode="json")
    if details is None:
        del answer["details"]
    return answer


def jobs(views: Sequence[JobView]) -> dict[str, Any]:
    return {"jobs": [job(view) for view in views]}


def resync(view: ResyncView) -> dict[str, Any]:
    answer = models.Resync(
        batch=view.batch_id,
        done=view.done,
        jobs=[_job(j, None) for j in view.jobs],
        skipped=[models.Skipped(source=s, reason=r) for s, r in view.skipped],
    ).model_dump(mode="json")
    for item in answer["jobs"]:
        del item["details"]
    return answer


def _phone_list(entries: Sequence[PhoneView]) -> list[models.Phone]:
    # Every slot is listed, deleted ones (tombstones) included, so that indexes are the ones
    # PUT, DELETE and reset name; a deleted number shows as null.
    return [
        models.Phone(index=i, number=e.number if e.number.strip() else None, manual=e.manual)
        for i, e in enumerate(entries)
    ]


def _phones(view: UserView) -> models.Phones:
    return models.Phones(sms=_phone_list(view.sms_phones), voice=_phone_list(view.voice_phones))


def phones(view: UserView) -> dict[str, Any]:
    return _phones(view).model_dump(mode="json")


def _user(view: UserView) -> models.User:
    state = view.state
    return models.User(
        id=view.id,
        source=view.source_id,
        external_id=view.external_id,
        user_name=view.user_name,
        dn=view.dn,
        display_name=view.display_name,
        given_name=view.given_name,
        family_name=view.family_name,
        emails=[dict(e) for e in view.emails],
        groups=list(view.groups),
        policy=dict(view.policy),
        status=state.status,
        disabled_by=state.disabled_by,
        reason=state.reason,
        source_status=state.source_status,
        pending_deletion_since=state.pending_deletion_since,
        created_at=view.created_at,
        updated_at=view.updated_at,
        last_sync_at=view.last_sync_at,
        last_auth_at=view.last_auth_at,
        notes=view.admin_notes,
        version=view.version,
        phones=_phones(view),
    )


def user(view: UserView) -> dict[str, Any]:
    return _user(view).model_dump(mode="json")


def users(views: Sequence[UserView]) -> dict[str, Any]:
    return {"users": [user(view) for view in views]}


def user_sync(result: SyncResult, view: UserView | None) -> dict[str, Any]:
    return models.UserSync(
        outcome=result.outcome, user=_user(view) if view is not None else None
    ).model_dump(mode="json")


def device(view: DeviceView) -> dict[str, Any]:
    return models.Device(
        id=view.id, kind=view.kind, label=view.label, registered_at=view.registered_at
    ).model_dump(mode="json")


def devices(views: Sequence[DeviceView]) -> dict[str, Any]:
    return {"devices": [device(view) for view in views]}


def audit_events(entries: Sequence[AuditEntry]) -> dict[str, Any]:
    return models.AuditEvents(
        events=[
            models.AuditEvent(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                source=e.source_id,
                user_id=e.user_id,
                user_name=e.user_name,
                details=dict(e.details),
            )
            for e in entries
        ]
    ).model_dump(mode="json")


def settings(view: Mapping[str, Any]) -> dict[str, Any]:
    return models.Settings.model_validate(view).model_dump(mode="json")


def holds(job_id: int, rows: Sequence[Hold]) -> dict[str, Any]:
    return models.Holds(
        job=job_id,
        holds=[
            models.Hold(
                id=row.id,
                user_id=row.user_id,
                user_name=row.user_name,
                external_id=row.external_id,
                source_status=row.source_status,
            )
            for row in rows
        ],
    ).model_dump(mode="json")
