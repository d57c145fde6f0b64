"""The admin API's one route table (docs/admin-api.md, "Routes").

Every operation is one `AdminRoute` row: the front serves exactly these, checks each row's
permission before its handler runs, and the OpenAPI document is drawn from the same rows,
so the roles, the routes and their description cannot disagree. Permissions follow SPEC §4.4:
a help desk administrator holds the user permissions only.
"""

from functools import cache
from typing import Any

from gateway.engine.roles import Permission
from scim.admin import handlers, models, openapi
from scim.admin.call import AdminRoute, Call, Reply

#: Where the API is mounted on the HTTP front.
PREFIX = "/admin"


def openapi_document(call: Call) -> Reply:
    return document()


_USER = "/users/{user_id}"
_SLOT = _USER + "/phones/{kind}/{index:int}"
_UPSTREAM = (502, 504)

ROUTES: tuple[AdminRoute, ...] = (
    # -- any administrator
    AdminRoute("GET", "/openapi.json", None, openapi_document,
               "This document (OpenAPI 3.1)", models.OpenApiDocument),
    AdminRoute("GET", "/whoami", None, handlers.whoami,
               "The administrator the token belongs to", models.WhoAmI),
    # -- sources (super admin)
    AdminRoute("GET", "/sources", Permission.MANAGE_SOURCES, handlers.list_sources,
               "The configured sources, secrets left out", models.Sources),
    AdminRoute("GET", "/sources/{source_id}", Permission.MANAGE_SOURCES, handlers.get_source,
               "One source's configuration, secrets left out", models.Source),
    AdminRoute("POST", "/sources/{source_id}/test", Permission.MANAGE_SOURCES,
               handlers.test_source,
               "Try each server of a directory source: bind, paged results, and a read of"
               " every root to its end (entries, pages, any limit hit)",
               models.ConnectionTest),
    # -- jobs (super admin)
    AdminRoute("GET", "/jobs", Permission.RUN_JOBS, handlers.list_jobs,
               "Jobs, newest first", models.Jobs, query=models.JobsQuery),
    AdminRoute("POST", "/jobs", Permission.RUN_JOBS, handlers.start_job,
               "Start a bulk sync, refresh or cleanup job", models.Job,
               body=models.JobStart, status=202, errors=(409,)),
    AdminRoute("POST", "/jobs/resync", Permission.RUN_JOBS, handlers.resync_all,
               "Resync all: one bulk job per directory source", models.Resync,
               status=202, errors=(409,)),
    AdminRoute("GET", "/jobs/resync/{batch_id}", Permission.RUN_JOBS, handlers.get_resync,
               "A resync's jobs, and whether all have ended", models.Resync),
    AdminRoute("GET", "/jobs/{job_id:int}", Permission.RUN_JOBS, handlers.get_job,
               "A job's state and counts, with its details lists when asked", models.Job,
               query=models.JobQuery),
    AdminRoute("POST", "/jobs/{job_id:int}/stop", Permission.RUN_JOBS, handlers.stop_job,
               "Ask a running job to stop after its current page", models.Job, errors=(409,)),
    AdminRoute("POST", "/jobs/{job_id:int}/confirm", Permission.RUN_JOBS, handlers.confirm_job,
               "Disable exactly the users a held job holds (the mass-disable guard)",
               models.Job, status=202, errors=(409,)),
    AdminRoute("POST", "/jobs/{job_id:int}/discard", Permission.RUN_JOBS, handlers.discard_job,
               "Drop a held job's list: nobody in it is disabled", models.Job, errors=(409,)),
    AdminRoute("GET", "/jobs/{job_id:int}/holds", Permission.RUN_JOBS, handlers.job_holds,
               "Every user a held job would disable, page by page", models.Holds,
               query=models.HoldsQuery),
    # -- users (help desk and super admin)
    AdminRoute("GET", "/users", Permission.VIEW_USERS, handlers.find_users,
               "The user of a source with this exact name; optionally looked up upstream",
               models.Users, query=models.UsersQuery, errors=_UPSTREAM),
    AdminRoute("GET", _USER, Permission.VIEW_USERS, handlers.get_user,
               "One user", models.User),
    AdminRoute("POST", _USER + "/sync", Permission.SYNC_USER, handlers.sync_user,
               "Sync one user from its directory now", models.UserSync, errors=_UPSTREAM),
    AdminRoute("POST", _USER + "/disable", Permission.DISABLE_USER, handlers.disable_user,
               "Disable a user (always allowed)", models.User, body=models.CommentBody),
    AdminRoute("POST", _USER + "/enable", Permission.ENABLE_USER, handlers.enable_user,
               "Enable a user, unless the source reports it disabled, expired or missing",
               models.User, body=models.CommentBody, errors=(409,)),
    AdminRoute("PUT", _USER + "/notes", Permission.EDIT_NOTES, handlers.set_notes,
               "Replace the administrators' notes on a user", models.User,
               body=models.NotesBody),
    AdminRoute("GET", _USER + "/phones", Permission.VIEW_USERS, handlers.get_phones,
               "A user's phone numbers, slot by slot", models.Phones),
    AdminRoute("POST", _USER + "/phones/{kind}", Permission.EDIT_PHONES, handlers.add_phone,
               "Add a manual number at the end of a list", models.Phones,
               body=models.NumberBody),
    AdminRoute("PUT", _SLOT, Permission.EDIT_PHONES, handlers.edit_phone,
               "Edit a number (blank deletes it)", models.Phones, body=models.NumberBody),
    AdminRoute("DELETE", _SLOT, Permission.EDIT_PHONES, handlers.delete_phone,
               "Delete a number; sync will not refill its slot", models.Phones),
    AdminRoute("POST", _SLOT + "/reset", Permission.EDIT_PHONES, handlers.reset_phone,
               "Hand a slot back to the directory", models.Phones),
    AdminRoute("GET", _USER + "/devices", Permission.VIEW_USERS, handlers.list_devices,
               "A user's registered devices", models.Devices),
    AdminRoute("POST", _USER + "/devices", Permission.MANAGE_DEVICES, handlers.add_device,
               "Register a device", models.Device, body=models.NewDevice, status=201),
    AdminRoute("DELETE", _USER + "/devices/{device_id}", Permission.MANAGE_DEVICES,
               handlers.remove_device, "Remove a device", None, status=204),
    AdminRoute("GET", _USER + "/audit", Permission.VIEW_USERS, handlers.user_audit,
               "A user's audit history, newest first", models.AuditEvents,
               query=models.LimitQuery),
    # -- audit log and settings (super admin)
    AdminRoute("GET", "/audit", Permission.VIEW_AUDIT, handlers.audit,
               "The audit log, newest first", models.AuditEvents, query=models.AuditQuery),
    AdminRoute("GET", "/settings", Permission.EDIT_SETTINGS, handlers.settings,
               "The effective settings, secrets left out", models.Settings),
)  # fmt: skip


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document of `ROUTES`, built once (it is the same for every caller)."""
    return openapi.document(ROUTES, prefix=PREFIX)
