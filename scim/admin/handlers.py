"""The admin API's operations: call a service, render its answer (STYLE habit 4).

Each runs in the thread pool with a checked `Call` (see `scim.admin.call`); the services
check the actor's role again themselves, and raise domain errors that `scim.admin.errors`
maps. Nothing here reads or writes the store but through a service.
"""

from gateway.engine.phones import PhoneKind
from gateway.engine.roles import Permission
from gateway.errors import InvalidInput, NotFound
from gateway.jobs.service import CATEGORIES
from gateway.users.records import UserView
from scim.admin import render
from scim.admin.call import Call, Reply
from scim.admin.models import (
    AuditQuery,
    CommentBody,
    HoldsQuery,
    JobQuery,
    JobsQuery,
    JobStart,
    LimitQuery,
    NewDevice,
    NotesBody,
    NumberBody,
    UsersQuery,
)

# -- who ---------------------------------------------------------------------------------------


def whoami(call: Call) -> Reply:
    return render.whoami(call.actor)


# -- sources -----------------------------------------------------------------------------------


def list_sources(call: Call) -> Reply:
    return render.sources(call.services.administration.sources(call.actor))


def get_source(call: Call) -> Reply:
    return render.source(call.services.administration.source(call.actor, call.path["source_id"]))


def test_source(call: Call) -> Reply:
    test = call.services.administration.test(call.actor, call.path["source_id"])
    return render.connection_test(test)


# -- jobs --------------------------------------------------------------------------------------


def list_jobs(call: Call) -> Reply:
    query = call.query_as(JobsQuery)
    views = call.services.jobs.history(
        call.actor, source_id=query.source, kind=query.kind, limit=query.limit
    )
    return render.jobs(views)


def start_job(call: Call) -> Reply:
    body = call.body_as(JobStart)
    return render.job(call.services.jobs.start(call.actor, body.kind, body.source))


def resync_all(call: Call) -> Reply:
    return render.resync(call.services.jobs.resync_all(call.actor))


def get_resync(call: Call) -> Reply:
    return render.resync(call.services.jobs.batch(call.actor, call.path["batch_id"]))


def get_job(call: Call) -> Reply:
    query = call.query_as(JobQuery)
    jobs, job_id = call.services.jobs, call.path["job_id"]
    view = jobs.get(call.actor, job_id)
    if not query.details:
        return render.job(view)
    # One read per list, so `limit` bounds each list and one long list cannot hide the others.
    categories = [query.category] if query.category else list(CATEGORIES)
    details = {
        category: jobs.details(call.actor, job_id, category=category, limit=query.limit)
        for category in categories
    }
    return render.job(view, details)


def stop_job(call: Call) -> Reply:
    return render.job(call.services.jobs.stop(call.actor, call.path["job_id"]))


def confirm_job(call: Call) -> Reply:
    return render.job(call.services.jobs.confirm(call.actor, call.path["job_id"]))


def discard_job(call: Call) -> Reply:
    return render.job(call.services.jobs.discard(call.actor, call.path["job_id"]))


def job_holds(call: Call) -> Reply:
    query = call.query_as(HoldsQuery)
    job_id = call.path["job_id"]
    rows = call.services.jobs.holds(call.actor, job_id, after=query.after, limit=query.limit)
    return render.holds(job_id, rows)


# -- users -------------------------------------------------------------------------------------


def find_users(call: Call) -> Reply:
    """The user of a source with this exact name; with `include_unsynchronized`, a directory
    user the store does not have yet is looked up and added (SPEC §5.2)."""
    query = call.query_as(UsersQuery)
    users, actor = call.services.users, call.actor
    view = users.find(actor, query.source, query.user_name)
    if view is None and query.include_unsynchronized:
        # Looking a user up adds them: it is a single-user sync, and needs that right.
        actor.require(Permission.SYNC_USER)
        try:
            result = call.services.lookup.include(query.source, query.user_name)
        except NotFound:
            result = None  # not a directory source: there is nothing to look up
        if result is not None and result.user_id is not None:
            view = users.get(actor, result.user_id)
    return render.users([view] if view is not None else [])


def get_user(call: Call) -> Reply:
    return render.user(call.services.users.get(call.actor, call.path["user_id"]))


def sync_user(call: Call) -> Reply:
    user_id = call.path["user_id"]
    result = call.services.lookup.sync(call.actor, user_id)
    try:
        # The sync's own view has no phone lists; the answer shows the whole record.
        view: UserView | None = call.services.users.get(call.actor, user_id)
    except NotFound:
        view = None
    return render.user_sync(result, view)


def disable_user(call: Call) -> Reply:
    body = call.body_as(CommentBody)
    users = call.services.users
    return render.user(users.disable(call.actor, call.path["user_id"], comment=body.comment))


def enable_user(call: Call) -> Reply:
    body = call.body_as(CommentBody)
    users = call.services.users
    return render.user(users.enable(call.actor, call.path["user_id"], comment=body.comment))


def set_notes(call: Call) -> Reply:
    body = call.body_as(NotesBody)
    return render.user(call.services.users.set_notes(call.actor, call.path["user_id"], body.notes))


# -- phone numbers -----------------------------------------------------------------------------


def get_phones(call: Call) -> Reply:
    return render.phones(call.services.users.get(call.actor, call.path["user_id"]))


def _slot(call: Call) -> tuple[str, PhoneKind, int]:
    """The user, list and slot a phone route names; a slot the list does not have is a 404
    (the service would call it invalid input, but it is a path that names nothing)."""
    user_id, kind, index = call.path["user_id"], call.path["kind"], call.path["index"]
    view = call.services.users.get(call.actor, user_id)
    slots = view.sms_phones if kind is PhoneKind.SMS else view.voice_phones
    if index >= len(slots):
        raise NotFound(f"user {user_id} has no {kind.value} number at index {index}")
    return user_id, kind, index


def _number_problem(exc: InvalidInput) -> InvalidInput:
    # The service names its list (`sms_phones`); the caller sent the body's `number`.
    return InvalidInput("number", exc.problem)


def add_phone(call: Call) -> Reply:
    body = call.body_as(NumberBody)
    users, user_id, kind = call.services.users, call.path["user_id"], call.path["kind"]
    try:
        view = users.add_phone(call.actor, user_id, kind, body.number)
    except InvalidInput as exc:
        raise _number_problem(exc) from exc
    return render.phones(view)


def edit_phone(call: Call) -> Reply:
    body = call.body_as(NumberBody)
    user_id, kind, index = _slot(call)
    try:
        view = call.services.users.edit_phone(call.actor, user_id, kind, index, body.number)
    except InvalidInput as exc:
        raise _number_problem(exc) from exc
    return render.phones(view)


def delete_phone(call: Call) -> Reply:
    user_id, kind, index = _slot(call)
    return render.phones(call.services.users.delete_phone(call.actor, user_id, kind, index))


def reset_phone(call: Call) -> Reply:
    user_id, kind, index = _slot(call)
    return render.phones(call.services.users.reset_phone(call.actor, user_id, kind, index))


# -- devices -----------------------------------------------------------------------------------


def list_devices(call: Call) -> Reply:
    return render.devices(call.services.users.devices(call.actor, call.path["user_id"]))


def add_device(call: Call) -> Reply:
    body = call.body_as(NewDevice)
    users, user_id = call.services.users, call.path["user_id"]
    device_id = users.register_device(
        call.actor, user_id, kind=body.kind, label=body.label, data=body.data
    )
    device = next((d for d in users.devices(call.actor, user_id) if d.id == device_id), None)
    if device is None:  # removed again between the two calls
        raise NotFound(f"user {user_id} has no device {device_id}")
    return render.device(device)


def remove_device(call: Call) -> Reply:
    call.services.users.remove_device(call.actor, call.path["user_id"], call.path["device_id"])
    return None


# -- audit and settings ------------------------------------------------------------------------


def user_audit(call: Call) -> Reply:
    query = call.query_as(LimitQuery)
    user_id = call.path["user_id"]
    call.services.users.get(call.actor, user_id)  # an unknown user is a 404, not an empty list
    entries = call.services.administration.audit(call.actor, user_id=user_id, limit=query.limit)
    return render.audit_events(entries)


def audit(call: Call) -> Reply:
    query = call.query_as(AuditQuery)
    entries = call.services.administration.audit(
        call.actor,
        user_id=query.user,
        source_id=query.source,
        action=query.action,
        since=query.since,
        limit=query.limit,
    )
    return render.audit_events(entries)


def settings(call: Call) -> Reply:
    return render.settings(call.services.administration.settings(call.actor))
