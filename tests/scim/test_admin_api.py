"""The admin API at /admin (docs/admin-api.md; SPEC §4.4, §5, §7) on the real runtime, in-process,
on SQLite and PostgreSQL; directory-backed routes against the real slapd (tests/servers).

The role and token checks iterate over the route table itself (`scim.admin.ROUTES`), so a
route added later cannot escape them; the expected refusals come from SPEC §4.4 (a help desk
administrator works on users only), not from the table's own permissions.
"""

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx2 import Response
from pydantic import BaseModel

from gateway.errors import NotFound
from gateway.jobs.service import CATEGORIES, JobKind, Jobs, Progress, Work
from gateway.runtime.main import Runtime
from gateway.users.service import utcnow
from scim.admin import PREFIX, ROUTES, models
from scim.admin.call import AdminRoute
from scim.admin.openapi import openapi_path
from tests.gateway.realgw import entry_uuid, unique
from tests.scim.adminharness import DEAD_DIRECTORY, DIRECTORY_SOURCE, SCIM_SOURCE, AdminApi
from tests.scim.harness import SCIM_TOKEN
from tests.servers.slapd import Slapd, SlapdError

CONTRACT = Path(__file__).parents[2] / "docs" / "admin-api.md"

#: A value for each path parameter: names that exist nowhere, or the real `corp` source.
EXAMPLES = {
    "source_id": DIRECTORY_SOURCE,
    "batch_id": "no-such-batch",
    "user_id": "no-such-user",
    "device_id": "no-such-device",
    "job_id": "1",
    "kind": "sms",
    "index": "0",
}
USER_KEYS = {
    "id", "source", "external_id", "user_name", "dn", "display_name", "given_name",
    "family_name", "emails", "groups", "policy", "status", "disabled_by", "reason",
    "source_status", "pending_deletion_since", "created_at", "updated_at", "last_sync_at",
    "last_auth_at", "notes", "version", "phones",
}  # fmt: skip
JOB_KEYS = {
    "id", "kind", "source", "state", "requested_by", "started_at", "ended_at", "error",
    "batch", "counts", "held_reason",
}  # fmt: skip


@pytest.fixture
def api(store_url: str) -> Iterator[AdminApi]:
    harness = AdminApi(store_url)
    yield harness
    harness.close()


@pytest.fixture
def dir_api(store_url: str, slapd: Slapd) -> Iterator[AdminApi]:
    harness = AdminApi(store_url, corp_urls=[slapd.url])
    yield harness
    harness.close()


def url(route: AdminRoute, **values: str) -> str:
    """The route's path with `values`, else `EXAMPLES`, for its parameters."""

    def value(match: re.Match[str]) -> str:
        return values.get(match[1], EXAMPLES[match[1]])

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, route.path)


def call(client: Any, route: AdminRoute, **kwargs: Any) -> Response:
    response: Response = client.request(route.method, url(route), **kwargs)
    return response


def error(response: Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The error body, checked against the contract's shape."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    models.Error.model_validate(body)
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if field is not None:
        assert body.get("field") == field, body
    return body


def ok(response: Response, model: type[BaseModel], status: int = 200) -> dict[str, Any]:
    """The answer, checked against its response model (unknown keys refused)."""
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    model.model_validate(body)
    return body


def help_desk_may(route: AdminRoute) -> bool:
    # SPEC §4.4: help desk is "users only: view, single-user sync, disable/enable, phone
    # numbers, devices"; any administrator may ask who they are and read the API document.
    return route.path.startswith("/users") or route.path in ("/whoami", "/openapi.json")


# -- the route table -----------------------------------------------------------------------------


def test_route_table_is_the_contract() -> None:
    documented = set()
    for line in CONTRACT.read_text().splitlines():
        if match := re.match(r"\| `(GET|POST|PUT|DELETE) (/admin/[^`?]*)", line):
            documented.add((match[1], match[2]))
    served = {(r.method, PREFIX + openapi_path(r.path)) for r in ROUTES}
    assert served == documented
    assert len(served) == len(ROUTES)  # one row per operation


def test_every_route_refuses_requests_without_an_admin_token(api: AdminApi) -> None:
    before = api.state()
    callers = {
        "no header": api.anonymous,
        "not bearer": api.client(None, headers={"Authorization": "Basic b3BzOm9wcw=="}),
        "empty bearer": api.client(None, headers={"Authorization": "Bearer "}),
        "wrong token": api.client("not-a-token-of-anybody"),
        "source token": api.client(SCIM_TOKEN),
    }
    for route in ROUTES:
        for caller, client in callers.items():
            response = call(client, route, json={})
            error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == 'Bearer realm="idgate-admin"', (
                route,
                caller,
            )
    assert api.state() == before


def test_help_desk_is_refused_everything_but_users(api: AdminApi) -> None:
    before = api.state()
    for route in ROUTES:
        response = call(api.desk, route, json={})
        if help_desk_may(route):
            assert response.status_code not in (401, 403), (route, response.text)
        else:
            error(response, 403, "forbidden")
    # Only the refused routes are sure to change nothing; the allowed ones met unknown ids.
    assert api.state() == before


def test_super_admin_may_use_every_route(api: AdminApi) -> None:
    for route in ROUTES:
        if route.path in ("/jobs/resync", "/sources/{source_id}/test") and route.method == "POST":
            continue  # they would start jobs or dial the dead directory; tested below
        response = call(api.ops, route, json={})
        assert response.status_code not in (401, 403, 405, 500), (route, response.text)


def test_whoami_names_the_administrator(api: AdminApi) -> None:
    assert ok(api.ops.get("/whoami"), models.WhoAmI) == {"name": "ops", "role": "super_admin"}
    assert ok(api.desk.get("/whoami"), models.WhoAmI) == {"name": "desk", "role": "help_desk"}


# -- sources -------------------------------------------------------------------------------------


def test_sources_are_shown_without_secrets(api: AdminApi) -> None:
    body = ok(api.ops.get("/sources"), models.Sources)
    assert [s["id"] for s in body["sources"]] == [SCIM_SOURCE, DIRECTORY_SOURCE]
    corp = ok(api.ops.get(f"/sources/{DIRECTORY_SOURCE}"), models.Source)
    assert corp["kind"] == "ldap" and corp["urls"] == [DEAD_DIRECTORY]
    assert corp["bind_dn"] == "cn=idgate,ou=services,dc=example,dc=org"
    for response in (api.ops.get("/sources"), api.ops.get(f"/sources/{SCIM_SOURCE}")):
        assert "bind_password" not in response.text and "idgate-secret" not in response.text
        assert "token_hash" not in response.text and "$argon2" not in response.text
    error(api.ops.get("/sources/nope"), 404, "not_found")


def test_connection_test_of_slapd(store_url: str, slapd: Slapd) -> None:
    api = AdminApi(store_url, corp_urls=[DEAD_DIRECTORY, slapd.url])
    try:
        body = ok(api.ops.post(f"/sources/{DIRECTORY_SOURCE}/test"), models.ConnectionTest)
        dead, live = body["servers"]
        assert body["source"] == DIRECTORY_SOURCE and body["ok"] is True
        assert (dead["url"], dead["ok"], dead["paged_results"]) == (DEAD_DIRECTORY, False, None)
        assert dead["error"]
        assert (live["url"], live["ok"], live["paged_results"]) == (slapd.url, True, True)
        assert live["sample_dn"].endswith(",ou=people,dc=example,dc=org")
        assert live["error"] is None and live["seconds"] >= 0
        error(api.ops.post(f"/sources/{SCIM_SOURCE}/test"), 400, "invalid_input", "source")
        error(api.ops.post("/sources/nope/test"), 404, "not_found")
    finally:
        api.close()


# -- users: lookup and single-user sync ----------------------------------------------------------


def find(api: AdminApi, user_name: str, *, include: bool = False, client: Any = None) -> Response:
    params = {"source": DIRECTORY_SOURCE, "user_name": user_name}
    if include:
        params["include_unsynchronized"] = "true"
    response: Response = (client or api.desk).get("/users", params=params)
    return response


def test_lookup_adds_a_directory_user_not_yet_synchronized(dir_api: AdminApi, slapd: Slapd) -> None:
    assert ok(find(dir_api, "alice"), models.Users) == {"users": []}
    found = ok(find(dir_api, "alice", include=True), models.Users)["users"]
    assert len(found) == 1
    alice = found[0]
    assert set(alice) == USER_KEYS
    assert alice["user_name"] == "alice" and alice["source"] == DIRECTORY_SOURCE
    assert alice["external_id"] == entry_uuid(slapd, slapd.users["alice"].dn)
    assert (alice["status"], alice["source_status"], alice["reason"]) == ("active", "enabled", None)
    assert alice["phones"]["sms"] == [{"index": 0, "number": "+1 202 555 0101", "manual": False}]
    assert alice["last_sync_at"] is not None and alice["created_at"].endswith("Z")
    # Now stored: found without a directory read, whatever the case of the name.
    assert ok(find(dir_api, "ALICE"), models.Users)["users"][0]["id"] == alice["id"]
    # Disabled and expired users are not added (SPEC §4.2); out of scope is not found.
    before = dir_api.state()
    for name in ("bob", "carol", "erin", "nobody-at-all"):
        assert ok(find(dir_api, name, include=True), models.Users) == {"users": []}, name
    after = dir_api.state()
    assert (after["users"], after["audit_events"]) == (before["users"], before["audit_events"])


def test_lookup_on_an_unreachable_directory_is_a_502(api: AdminApi) -> None:
    before = api.state()
    error(find(api, "alice", include=True), 502, "upstream_unavailable")
    assert api.state() == before
    # Without the lookup nothing reaches the directory.
    assert ok(find(api, "alice"), models.Users) == {"users": []}


def test_lookup_of_a_provisioned_source_reads_the_store_only(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    params = {"source": SCIM_SOURCE, "include_unsynchronized": "true"}
    users = ok(api.desk.get("/users", params={**params, "user_name": "Pat"}), models.Users)
    assert [u["id"] for u in users["users"]] == [user_id]
    users = ok(api.desk.get("/users", params={**params, "user_name": "sam"}), models.Users)
    assert users == {"users": []}
    unknown = api.desk.get("/users", params={"source": "nope", "user_name": "x"})
    assert ok(unknown, models.Users) == {"users": []}


BAD_LOOKUPS = [
    ({"user_name": "alice"}, "source"),
    ({"source": "corp"}, "user_name"),
    ({"source": "corp", "user_name": ""}, "user_name"),
    ({"source": "corp", "user_name": "x" * 256}, "user_name"),
    ({"source": "corp", "user_name": "al\x00ice"}, "user_name"),
    ({"source": "co\x00rp", "user_name": "alice"}, "source"),
    ({"source": "corp", "user_name": "alice", "include_unsynchronized": "maybe"},
     "include_unsynchronized"),
    ({"source": "corp", "user_name": "alice", "include_unsynchronised": "true"},
     "include_unsynchronised"),
]  # fmt: skip


def test_lookup_refuses_bad_parameters(api: AdminApi, subtests: pytest.Subtests) -> None:
    before = api.state()
    for query, field in BAD_LOOKUPS:
        with subtests.test(query=query):
            error(api.desk.get("/users", params=query), 400, "invalid_input", field)
    assert api.state() == before


def test_a_parameter_given_twice_is_refused(api: AdminApi) -> None:
    response = api.ops.get("/jobs?limit=5&limit=6")
    error(response, 400, "invalid_input", "limit")


def test_sync_disables_a_locked_user_and_enable_is_refused(dir_api: AdminApi, slapd: Slapd) -> None:
    uid = unique("adm-lock")
    dn = slapd.add_user(uid, userPassword=f"{uid}-secret")
    try:
        user = ok(find(dir_api, uid, include=True), models.Users)["users"][0]
        user_id = user["id"]
        slapd.modify(dn, {"pwdAccountLockedTime": "000001010000Z"})
        synced = ok(dir_api.desk.post(f"/users/{user_id}/sync"), models.UserSync)
        assert synced["outcome"] == "disabled"
        state = {k: synced["user"][k] for k in ("status", "disabled_by", "reason", "source_status")}
        assert state == {
            "status": "disabled",
            "disabled_by": "source",
            "reason": "source_disabled",
            "source_status": "disabled",
        }
        # SPEC §4.4: no manual enable while the source says disabled; nothing changes.
        before = dir_api.state()
        refused = dir_api.desk.post(f"/users/{user_id}/enable", json={"comment": "please"})
        assert error(refused, 409, "enable_refused")["source_status"] == "disabled"
        assert dir_api.state() == before
        # Manual disable is always allowed, and holds when the source enables the user again.
        disabled = ok(dir_api.desk.post(f"/users/{user_id}/disable"), models.User)
        assert (disabled["disabled_by"], disabled["reason"]) == ("admin", "admin")
        slapd.modify(dn, {"pwdAccountLockedTime": None})
        synced = ok(dir_api.desk.post(f"/users/{user_id}/sync"), models.UserSync)
        assert synced["user"]["status"] == "disabled"
        assert synced["user"]["source_status"] == "enabled"
        enabled = ok(dir_api.desk.post(f"/users/{user_id}/enable"), models.User)
        assert (enabled["status"], enabled["disabled_by"]) == ("active", None)
        # Deleted upstream: missing, and enable is refused with that reason.
        slapd.delete(dn)
        synced = ok(dir_api.desk.post(f"/users/{user_id}/sync"), models.UserSync)
        assert (synced["outcome"], synced["user"]["reason"]) == ("disabled", "missing")
        refused = dir_api.desk.post(f"/users/{user_id}/enable")
        assert error(refused, 409, "enable_refused")["source_status"] == "missing"
    finally:
        with contextlib.suppress(SlapdError):  # deleted by the test already
            slapd.delete(dn)
    actions = [e["action"] for e in dir_api.desk.get(f"/users/{user_id}/audit").json()["events"]]
    assert actions.count("user.sync_requested") == 3


def test_sync_of_a_provisioned_user_is_invalid_input(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    before = api.state()
    error(api.desk.post(f"/users/{user_id}/sync"), 400, "invalid_input", "user")
    error(api.desk.post("/users/no-such-user/sync"), 404, "not_found")
    assert api.state() == before


# -- users: state, notes, devices, audit ---------------------------------------------------------


def test_disable_enable_and_notes(api: AdminApi) -> None:
    user_id = api.scim_user("pat", displayName="Pat Doe")
    user = ok(api.desk.get(f"/users/{user_id}"), models.User)
    assert set(user) == USER_KEYS
    assert (user["display_name"], user["status"], user["notes"]) == ("Pat Doe", "active", None)
    disabled = ok(api.desk.post(f"/users/{user_id}/disable", json={"comment": "lost laptop"}),
                  models.User)  # fmt: skip
    assert (disabled["status"], disabled["disabled_by"], disabled["reason"]) == (
        "disabled",
        "admin",
        "admin",
    )
    assert disabled["version"] > user["version"]
    # No body at all is an empty object (every field of it is optional).
    enabled = ok(api.desk.post(f"/users/{user_id}/enable"), models.User)
    assert enabled["status"] == "active"
    noted = ok(api.desk.put(f"/users/{user_id}/notes", json={"notes": "VIP"}), models.User)
    assert noted["notes"] == "VIP"
    cleared = ok(api.desk.put(f"/users/{user_id}/notes", json={"notes": None}), models.User)
    assert cleared["notes"] is None
    error(api.desk.put(f"/users/{user_id}/notes", json={}), 400, "invalid_input", "notes")
    error(api.desk.get("/users/no-such-user"), 404, "not_found")
    events = ok(api.desk.get(f"/users/{user_id}/audit"), models.AuditEvents)["events"]
    assert [e["action"] for e in events][:4] == [
        "user.notes_changed",
        "user.notes_changed",
        "user.enabled_by_admin",
        "user.disabled_by_admin",
    ]
    assert events[3]["details"]["comment"] == "lost laptop" and events[3]["actor"] == "desk"
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)


def test_devices_are_registered_listed_and_removed(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    assert ok(api.desk.get(f"/users/{user_id}/devices"), models.Devices) == {"devices": []}
    body = {"kind": "totp", "label": "Pat's phone", "data": {"issuer": "idgate", "digits": 6}}
    device = ok(api.desk.post(f"/users/{user_id}/devices", json=body), models.Device, 201)
    assert (device["kind"], device["label"]) == ("totp", "Pat's phone")
    listed = ok(api.desk.get(f"/users/{user_id}/devices"), models.Devices)["devices"]
    assert listed == [device]
    removed = api.desk.delete(f"/users/{user_id}/devices/{device['id']}")
    assert (removed.status_code, removed.content) == (204, b"")
    error(api.desk.delete(f"/users/{user_id}/devices/{device['id']}"), 404, "not_found")
    error(api.desk.post("/users/no-such-user/devices", json=body), 404, "not_found")


BAD_DEVICES = {
    "no label": (b'{"kind": "totp"}', "label"),
    "empty kind": (b'{"kind": "", "label": "x"}', "kind"),
    "long kind": (b'{"kind": "' + b"k" * 33 + b'", "label": "x"}', "kind"),
    "long label": (b'{"kind": "totp", "label": "' + b"l" * 256 + b'"}', "label"),
    "NUL label": (b'{"kind": "totp", "label": "a\\u0000b"}', "label"),
    "NUL in data": (b'{"kind": "totp", "label": "x", "data": {"k": "\\u0000"}}', "data"),
    "NaN in data": (b'{"kind": "totp", "label": "x", "data": {"k": [NaN]}}', "data"),
    "infinity in data": (b'{"kind": "totp", "label": "x", "data": {"k": 1e999}}', "data"),
    "data not an object": (b'{"kind": "totp", "label": "x", "data": []}', "data"),
    "kind not a string": (b'{"kind": 5, "label": "x"}', "kind"),
}  # fmt: skip


def test_bad_devices_are_refused(api: AdminApi, subtests: pytest.Subtests) -> None:
    user_id = api.scim_user("pat")
    before = api.state()
    for name, (raw, field) in BAD_DEVICES.items():
        with subtests.test(name):
            response = api.desk.post(
                f"/users/{user_id}/devices",
                content=raw,
                headers={"Content-Type": "application/json"},
            )
            error(response, 400, "invalid_input", field)
    assert api.state() == before


def test_audit_log(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    other_id = api.scim_user("sam")
    api.ops.post(f"/users/{user_id}/disable", json={"comment": "one"})
    api.ops.post(f"/users/{other_id}/disable")
    everything = ok(api.ops.get("/audit"), models.AuditEvents)["events"]
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    mine = ok(api.ops.get("/audit", params={"user": user_id}), models.AuditEvents)["events"]
    assert {e["user_id"] for e in mine} == {user_id}
    disables = api.ops.get("/audit", params={"action": "user.disabled_by_admin", "limit": "1"})
    (latest,) = ok(disables, models.AuditEvents)["events"]
    assert (latest["user_id"], latest["user_name"], latest["actor"]) == (other_id, "sam", "ops")
    assert latest["source"] == SCIM_SOURCE and latest["at"].endswith("Z")
    by_source = ok(api.ops.get("/audit", params={"source": SCIM_SOURCE}), models.AuditEvents)
    assert len(by_source["events"]) == len(everything)
    future = api.ops.get("/audit", params={"since": "2999-01-01T00:00:00"})  # naive: UTC
    assert ok(future, models.AuditEvents) == {"events": []}
    past = api.ops.get("/audit", params={"since": "2000-01-01T00:00:00+02:00"})
    assert len(ok(past, models.AuditEvents)["events"]) == len(everything)
    for params, field in (
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"user": "a\x00b"}, "user"),
        ({"action": "x" * 65}, "action"),
    ):
        error(api.ops.get("/audit", params=params), 400, "invalid_input", field)
    error(api.desk.get(f"/users/{user_id}/audit", params={"limit": "0"}), 400, "invalid_input")
    error(api.desk.get("/users/no-such-user/audit"), 404, "not_found")


def test_settings_leave_secrets_out(api: AdminApi) -> None:
    response = api.ops.get("/settings")
    body = ok(response, models.Settings)
    assert body["admins"] == [
        {"name": "ops", "role": "super_admin"},
        {"name": "desk", "role": "help_desk"},
    ]
    assert body["sync"]["jit_interval_seconds"] == 0
    assert "$argon2" not in response.text and "token_hash" not in response.text


# -- phone numbers (SPEC §3) ---------------------------------------------------------------------


def test_phone_numbers_keep_their_provenance(dir_api: AdminApi) -> None:
    user_id = ok(find(dir_api, "alice", include=True), models.Users)["users"][0]["id"]
    base = f"/users/{user_id}/phones"
    phones = ok(dir_api.desk.get(base), models.Phones)
    assert phones == {
        "sms": [{"index": 0, "number": "+1 202 555 0101", "manual": False}],
        "voice": [{"index": 0, "number": "+1 202 555 0111", "manual": False}],
    }
    # A new format of the same number stays synced; new digits make it manual.
    sms = ok(dir_api.desk.put(f"{base}/sms/0", json={"number": "+1 (202) 555-0101"}),
             models.Phones)["sms"]  # fmt: skip
    assert sms == [{"index": 0, "number": "+1 (202) 555-0101", "manual": False}]
    sms = ok(dir_api.desk.put(f"{base}/sms/0", json={"number": "+1 202 555 0199"}),
             models.Phones)["sms"]  # fmt: skip
    assert sms == [{"index": 0, "number": "+1 202 555 0199", "manual": True}]
    added = ok(dir_api.desk.post(f"{base}/voice", json={"number": "+44 20 7946 0000"}),
               models.Phones)["voice"]  # fmt: skip
    assert added[1] == {"index": 1, "number": "+44 20 7946 0000", "manual": True}
    deleted = ok(dir_api.desk.delete(f"{base}/voice/0"), models.Phones)["voice"]
    assert deleted[0] == {"index": 0, "number": None, "manual": True}
    # A sync leaves manual slots (the deleted one included) alone...
    user = ok(dir_api.desk.post(f"/users/{user_id}/sync"), models.UserSync)["user"]
    assert user["phones"]["sms"][0]["number"] == "+1 202 555 0199"
    assert user["phones"]["voice"][0] == {"index": 0, "number": None, "manual": True}
    # ...and refills a slot handed back to the directory.
    reset = ok(dir_api.desk.post(f"{base}/sms/0/reset"), models.Phones)["sms"]
    assert reset[0]["manual"] is False
    user = ok(dir_api.desk.post(f"/users/{user_id}/sync"), models.UserSync)["user"]
    assert user["phones"]["sms"] == [{"index": 0, "number": "+1 202 555 0101", "manual": False}]


def test_bad_phone_requests_are_refused(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    base = f"/users/{user_id}/phones"
    ok(api.desk.post(f"{base}/sms", json={"number": "+1 202 555 0101"}), models.Phones)
    before = api.state()
    error(api.desk.put(f"{base}/sms/1", json={"number": "1"}), 404, "not_found")
    error(api.desk.delete(f"{base}/voice/0"), 404, "not_found")
    error(api.desk.post(f"{base}/sms/3/reset"), 404, "not_found")
    error(api.desk.post(f"{base}/fax", json={"number": "1"}), 404, "not_found")
    error(api.desk.put(f"{base}/sms/-1", json={"number": "1"}), 404, "not_found")
    error(api.desk.post(f"{base}/sms", json={"number": "call me"}), 400, "invalid_input", "number")
    error(api.desk.put(f"{base}/sms/0", json={"number": "x"}), 400, "invalid_input", "number")
    error(api.desk.post(f"{base}/sms", json={"number": "1" * 65}), 400, "invalid_input", "number")
    error(api.desk.post(f"{base}/sms", json={"number": 12025550101}), 400, "invalid_input",
          "number")  # fmt: skip
    error(api.desk.post(f"{base}/sms", json={}), 400, "invalid_input", "number")
    error(api.desk.get("/users/no-such-user/phones"), 404, "not_found")
    assert api.state() == before


# -- jobs ----------------------------------------------------------------------------------------


def test_bulk_job_against_slapd(dir_api: AdminApi) -> None:
    started = ok(dir_api.ops.post("/jobs", json={"kind": "bulk", "source": DIRECTORY_SOURCE}),
                 models.Job, 202)  # fmt: skip
    assert set(started) == JOB_KEYS
    assert (started["kind"], started["source"], started["requested_by"]) == (
        "bulk",
        DIRECTORY_SOURCE,
        "ops",
    )
    assert started["state"] == "running"
    job_id = started["id"]
    dir_api.wait_job(job_id)
    job = ok(dir_api.ops.get(f"/jobs/{job_id}"), models.Job)
    assert set(job) == JOB_KEYS
    assert (job["state"], job["error"]) == ("succeeded", None)
    assert job["ended_at"] is not None
    counts = job["counts"]
    # At least alice, dave and frank; bob and carol (other tests may add people of their own).
    assert counts["added"] >= 3 and counts["not_synchronized"] >= 2
    assert counts["read"] >= counts["added"] + counts["not_synchronized"]
    details = ok(dir_api.ops.get(f"/jobs/{job_id}", params={"details": "true"}), models.Job)
    lists = details["details"]
    assert list(lists) == list(CATEGORIES)
    assert {c: len(lists[c]) for c in CATEGORIES} == {
        c: counts[c] for c in CATEGORIES
    }  # all fit in 400
    added = {d["user_name"] for d in lists["added"]}
    assert {"alice", "dave", "frank"} <= added and "erin" not in added
    reasons = {d["user_name"]: d["reason"] for d in lists["not_synchronized"]}
    assert reasons["bob"] == "disabled in the source"
    assert reasons["carol"] == "expired in the source"
    one = dir_api.ops.get(f"/jobs/{job_id}", params={"details": "1", "category": "added",
                                                     "limit": "1"})  # fmt: skip
    assert {k: len(v) for k, v in ok(one, models.Job)["details"].items()} == {"added": 1}
    # The users are in the store now.
    alice = ok(find(dir_api, "alice"), models.Users)["users"][0]
    assert alice["status"] == "active"
    # History, newest first, filtered.
    history = ok(dir_api.ops.get("/jobs", params={"source": DIRECTORY_SOURCE, "kind": "bulk"}),
                 models.Jobs)  # fmt: skip
    assert [j["id"] for j in history["jobs"]] == [job_id]
    assert ok(dir_api.ops.get("/jobs", params={"kind": "cleanup"}), models.Jobs) == {"jobs": []}
    # An ended job cannot be stopped; an unknown one does not exist.
    error(dir_api.ops.post(f"/jobs/{job_id}/stop"), 409, "conflict")
    error(dir_api.ops.get(f"/jobs/{job_id + 1}"), 404, "not_found")
    error(dir_api.ops.get("/jobs/99999999999999999999"), 404, "not_found")


def test_refresh_and_cleanup_jobs_run(dir_api: AdminApi) -> None:
    for body in ({"kind": "refresh", "source": DIRECTORY_SOURCE}, {"kind": "cleanup"}):
        job = ok(dir_api.ops.post("/jobs", json=body), models.Job, 202)
        assert (job["kind"], job["source"]) == (body["kind"], body.get("source"))
        dir_api.wait_job(job["id"])
        done = ok(dir_api.ops.get(f"/jobs/{job['id']}"), models.Job)
        assert (done["state"], done["error"]) == ("succeeded", None), done
    kinds = [j["kind"] for j in ok(dir_api.ops.get("/jobs"), models.Jobs)["jobs"]]
    assert kinds == ["cleanup", "refresh"]


def test_resync_all_against_slapd(dir_api: AdminApi) -> None:
    resync = ok(dir_api.ops.post("/jobs/resync"), models.Resync, 202)
    assert [j["source"] for j in resync["jobs"]] == [DIRECTORY_SOURCE]
    assert resync["skipped"] == []
    for job in resync["jobs"]:
        assert job["batch"] == resync["batch"]
        dir_api.wait_job(job["id"])
    done = ok(dir_api.ops.get(f"/jobs/resync/{resync['batch']}"), models.Resync)
    assert done["done"] is True and done["jobs"][0]["state"] == "succeeded"
    dir_api.wait_for_audit("resync.completed")
    error(dir_api.ops.get("/jobs/resync/no-such-batch"), 404, "not_found")


def _held_work(kind: JobKind, source_id: str | None) -> Work:
    """A job that runs until it is asked to stop (the directory's speed decides nothing)."""
    if kind is not JobKind.CLEANUP and source_id != DIRECTORY_SOURCE:
        raise NotFound(f"no directory source with id {source_id}")

    def work(progress: Progress) -> bool:
        while not progress.stopping():
            time.sleep(0.01)
        return False

    return work


def _held_jobs(runtime: Runtime) -> Jobs:
    return Jobs(
        runtime.store,
        _held_work,
        directory_sources=lambda: [DIRECTORY_SOURCE],
        clock=utcnow,
        lease_seconds=60,
    )


def test_a_running_job_blocks_another_and_stops_when_asked(store_url: str) -> None:
    api = AdminApi(store_url, jobs=_held_jobs)
    try:
        body = {"kind": "bulk", "source": DIRECTORY_SOURCE}
        job = ok(api.ops.post("/jobs", json=body), models.Job, 202)
        running = error(api.ops.post("/jobs", json=body), 409, "job_running")
        assert running["job"] == job["id"]
        assert error(api.ops.post("/jobs/resync"), 409, "job_running")["job"] is None
        assert ok(api.ops.get(f"/jobs/{job['id']}"), models.Job)["state"] == "running"
        stopping = ok(api.ops.post(f"/jobs/{job['id']}/stop"), models.Job)
        assert stopping["state"] == "stopping"
        api.wait_job(job["id"])
        stopped = ok(api.ops.get(f"/jobs/{job['id']}"), models.Job)
        assert stopped["state"] == "stopped" and stopped["ended_at"] is not None
        error(api.ops.post(f"/jobs/{job['id']}/stop"), 409, "conflict")
        # Free again: a resync starts, and is not done until its job ends.
        resync = ok(api.ops.post("/jobs/resync"), models.Resync, 202)
        assert resync["done"] is False
        batch = ok(api.ops.get(f"/jobs/resync/{resync['batch']}"), models.Resync)
        assert batch["done"] is False and batch["jobs"][0]["state"] == "running"
        ok(api.ops.post(f"/jobs/{batch['jobs'][0]['id']}/stop"), models.Job)
        api.wait_job(batch["jobs"][0]["id"])
        batch = ok(api.ops.get(f"/jobs/resync/{resync['batch']}"), models.Resync)
        assert batch["done"] is True and batch["jobs"][0]["state"] == "stopped"
        api.wait_for_audit("resync.completed")
    finally:
        api.close()


BAD_JOB_STARTS = [
    ({"kind": "nightly", "source": "corp"}, 400, "invalid_input", "kind"),
    ({"source": "corp"}, 400, "invalid_input", "kind"),
    ({"kind": "bulk"}, 400, "invalid_input", "source"),
    ({"kind": "cleanup", "source": "corp"}, 400, "invalid_input", "source"),
    ({"kind": "bulk", "source": "scim"}, 400, "invalid_input", "source"),
    ({"kind": "bulk", "source": 5}, 400, "invalid_input", "source"),
    ({"kind": "bulk", "source": "corp", "when": "now"}, 400, "invalid_input", "when"),
    ({"kind": "bulk", "source": "nope"}, 404, "not_found", None),
]


def test_bad_job_starts_are_refused(api: AdminApi, subtests: pytest.Subtests) -> None:
    before = api.state()
    for body, status, code, field in BAD_JOB_STARTS:
        with subtests.test(body=body):
            error(api.ops.post("/jobs", json=body), status, code, field)
    assert api.state() == before


BAD_JOB_QUERIES = [
    ("/jobs?kind=nightly", "kind"),
    ("/jobs?limit=0", "limit"),
    ("/jobs?limit=1001", "limit"),
    ("/jobs?limit=many", "limit"),
    ("/jobs?source=c%00rp", "source"),
    ("/jobs?page=2", "page"),
    ("/jobs/1?details=maybe", "details"),
    ("/jobs/1?details=true&category=skipped", "category"),
    ("/jobs/1?details=true&limit=0", "limit"),
]


def test_bad_job_queries_are_refused(api: AdminApi, subtests: pytest.Subtests) -> None:
    for path, field in BAD_JOB_QUERIES:
        with subtests.test(path=path):
            error(api.ops.get(path), 400, "invalid_input", field)


# -- bad input anywhere --------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
BAD_BODIES = {
    "malformed JSON": (b'{"notes": "x"', JSON, 400, "invalid_input", "body"),
    "not UTF-8": (b"\xff\xfe", JSON, 400, "invalid_input", "body"),
    "not an object": (b'["notes"]', JSON, 400, "invalid_input", "body"),
    "text/plain": (b'{"notes": "x"}', {"Content-Type": "text/plain"}, 415,
                   "unsupported_media_type", None),
    "form": (b'{"notes": "x"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415,
             "unsupported_media_type", None),
    "no content type": (b'{"notes": "x"}', {}, 415, "unsupported_media_type", None),
    "unknown field": (b'{"notes": "x", "pinned": true}', JSON, 400, "invalid_input", "pinned"),
    "wrong type": (b'{"notes": 5}', JSON, 400, "invalid_input", "notes"),
    "NUL": (b'{"notes": "a\\u0000b"}', JSON, 400, "invalid_input", "notes"),
    "notes too long": (b'{"notes": "' + b"n" * 10_001 + b'"}', JSON, 400, "invalid_input",
                       "notes"),
    "body too large": (b'{"notes": "' + b"n" * (64 * 1024) + b'"}', JSON, 413, "too_large",
                       None),
}  # fmt: skip


def test_bad_bodies_are_refused_and_change_nothing(
    api: AdminApi, subtests: pytest.Subtests
) -> None:
    user_id = api.scim_user("pat")
    before = api.state()
    for name, (content, headers, status, code, field) in BAD_BODIES.items():
        with subtests.test(name):
            response = api.desk.put(f"/users/{user_id}/notes", content=content, headers=headers)
            error(response, status, code, field)
    assert api.state() == before


def test_a_streamed_body_is_cut_at_the_limit(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    before = api.state()

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold while reading.
        yield b'{"notes": "'
        for _ in range(100):
            yield b"n" * 1024
        yield b'"}'

    response = api.desk.put(
        f"/users/{user_id}/notes", content=chunks(), headers={"Content-Type": "application/json"}
    )
    error(response, 413, "too_large")
    assert api.state() == before


def test_a_body_on_a_route_without_one_must_be_empty(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    before = api.state()
    response = api.desk.request("DELETE", f"/users/{user_id}/phones/sms/0", json={"force": 1})
    error(response, 400, "invalid_input", "force")
    assert api.state() == before


def test_ids_that_cannot_exist_are_404_for_every_route(api: AdminApi) -> None:
    user_id = api.scim_user("pat")
    before = api.state()
    impossible = ["%00", "a%00b", "x" * 4000]
    for route in ROUTES:
        for name in re.findall(r"\{(\w+)", route.path):
            for bad in ["99999999999999999999", "0"] if name in ("job_id",) else impossible:
                values = {"user_id": user_id, name: bad}
                if name == "index":
                    values[name] = "99999999"
                response = api.ops.request(route.method, url(route, **values), json={})
                error(response, 404, "not_found")
    assert api.state() == before


def test_unknown_routes_and_methods(api: AdminApi) -> None:
    error(api.ops.get("/nope"), 404, "not_found")
    error(api.anonymous.get("/users/x/nope"), 404, "not_found")
    refused = api.ops.delete("/whoami")
    error(refused, 405, "method_not_allowed")
    assert "GET" in refused.headers["allow"]
    refused = api.ops.patch("/users/x/phones/sms/0")
    error(refused, 405, "method_not_allowed")
    assert {"PUT", "DELETE"} <= {m.strip() for m in refused.headers["allow"].split(",")}
    error(api.ops.get("/jobs/resync"), 405, "method_not_allowed")


# -- robustness ----------------------------------------------------------------------------------


def test_an_unexpected_failure_is_a_500_without_details(
    api: AdminApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.runtime.user_admin, "get", broken)
    with caplog.at_level(logging.ERROR, logger="scim.admin.app"):
        response = api.desk.get("/users/anyone")
    error(response, 500, "internal")
    assert "secret internals" not in response.text and "RuntimeError" not in response.text
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_tokens_and_services_are_called_off_the_event_loop(
    api: AdminApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: dict[str, bool] = {}

    def watched(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop[name] = True
            except RuntimeError:
                on_loop[name] = False
            return function(*args, **kwargs)

        return call

    tokens, users = api.runtime.tokens, api.runtime.user_admin
    monkeypatch.setattr(tokens, "verify_admin", watched("verify_admin", tokens.verify_admin))
    monkeypatch.setattr(users, "get", watched("get", users.get))
    api.client("a-token-never-seen-before").get("/whoami")  # argon2 runs for it
    api.desk.get("/users/no-such-user")
    assert on_loop == {"verify_admin": False, "get": False}


def test_requests_are_counted_in_the_metrics(api: AdminApi) -> None:
    api.ops.get("/whoami")
    api.desk.get("/sources")
    registry = api.runtime.metrics.registry

    def count(method: str, status: str) -> float:
        labels = {"endpoint": "admin-api", "method": method, "status": status}
        return registry.get_sample_value("idgate_scim_requests_total", labels) or 0.0

    assert count("GET", "200") >= 1 and count("GET", "403") >= 1


# -- the OpenAPI document ------------------------------------------------------------------------


def test_openapi_document_describes_every_route(api: AdminApi) -> None:
    response = api.desk.get("/openapi.json")
    document = ok(response, models.OpenApiDocument)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearer": {"type": "http", "scheme": "bearer", "description": ANY_TEXT}}
    assert document["security"] == [{"bearer": []}]
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {(r.method, PREFIX + openapi_path(r.path)) for r in ROUTES}
    schemas = document["components"]["schemas"]
    for route in ROUTES:
        operation = document["paths"][PREFIX + openapi_path(route.path)][route.method.lower()]
        assert operation["x-idgate-permission"] == (route.permission and route.permission.value)
        assert str(route.status) in operation["responses"] and "401" in operation["responses"]
        assert ("403" in operation["responses"]) == (route.permission is not None)
        names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert names == set(re.findall(r"\{(\w+)", route.path))
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert query == set(route.query.model_fields)
        assert ("requestBody" in operation) == bool(route.body.model_fields)
    # Every reference resolves.
    for ref in re.findall(r'"\$ref": ?"([^"]+)"', response.text):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    assert {"User", "Job", "Resync", "Phones", "Device", "AuditEvent", "Error"} <= set(schemas)


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT = _AnyText()
