"""The admin view at /scim/v2 (SPEC §7, §4.4): the users of every source, read-only, with the
gateway extension (status, disabledBy, reason, source, pendingDeletionSince, lastSync,
lastAuthentication, phones), filterable and sortable on each of them.

One population serves most tests: two users of the `scim` source, one of `entra`, four of the
`corp` directory (put in the store through the user service, as a bulk sync would), in every
state SPEC §4.1 knows, with fixed sync and authentication times.
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import Response
from sqlalchemy import select

from gateway.engine.phones import PhoneKind
from gateway.engine.plan import SourceUser
from gateway.engine.status import mark_never_used
from gateway.engine.types import Role, SourceStatus, Trigger
from gateway.users.names import name_key
from gateway.users.records import state_of, write_state
from gateway.users.service import Actor
from store.models import User
from tests.scim.harness import (
    ADMIN_TOKEN,
    DIRECTORY_SOURCE,
    ENTRA_SOURCE,
    ENTRA_TOKEN,
    HELPDESK_TOKEN,
    SCIM_MEDIA_TYPE,
    SCIM_SOURCE,
    SCIM_TOKEN,
    Harness,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GATEWAY = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"
EXTENSION_ATTRIBUTES = {
    "source",
    "status",
    "disabledBy",
    "reason",
    "pendingDeletionSince",
    "lastSync",
    "lastAuthentication",
    "phones",
}

OPS = Actor("ops", Role.SUPER_ADMIN)


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T09:00:00+00:00")


LAST_SYNC = {
    "sam": at("2025-01-01"),
    "sue": at("2025-01-02"),
    "eve": at("2025-01-03"),
    "ann": at("2025-01-04"),
    "dana": at("2025-01-05"),
    "dora": at("2025-01-06"),
    "carl": at("2025-01-07"),
}
LAST_AUTH = {"ann": at("2024-01-15"), "dana": at("2024-02-10"), "sam": at("2024-03-01")}
CARL_PENDING_SINCE = at("2024-05-01")
DISABLED = {
    "sue": ("source", "source_disabled"),
    "eve": ("source", "missing"),
    "dana": ("source", "source_expired"),
    "dora": ("admin", "admin"),
    "carl": ("cleanup", "never_used"),
}
SOURCES = {
    "sam": SCIM_SOURCE,
    "sue": SCIM_SOURCE,
    "eve": ENTRA_SOURCE,
    "ann": DIRECTORY_SOURCE,
    "dana": DIRECTORY_SOURCE,
    "dora": DIRECTORY_SOURCE,
    "carl": DIRECTORY_SOURCE,
}


# -- helpers ---------------------------------------------------------------------------------


def scim_user(client: Any, user_name: str) -> dict[str, Any]:
    response = client.post("/Users", json={"schemas": [USER], "userName": user_name})
    assert response.status_code == 201, response.text
    return response.json()


def directory_report(user_name: str, status: SourceStatus) -> SourceUser:
    return SourceUser(
        external_id=f"corp-{user_name}",
        user_name=user_name,
        status=status,
        dn=f"uid={user_name},ou=people,dc=example,dc=org",
        display_name=user_name.title(),
    )


def gateway_id(harness: Harness, user_name: str) -> str:
    with harness.runtime.store.reading() as session:
        return session.scalars(
            select(User.id).where(
                User.source_id == SOURCES.get(user_name, SCIM_SOURCE),
                User.user_name_key == name_key(user_name),
            )
        ).one()


def populate(harness: Harness) -> dict[str, str]:
    """Create the population; returns the gateway id of each user."""
    scim_user(harness.scim, "sam")
    sue = scim_user(harness.scim, "sue")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert harness.scim.patch(f"/Users/{sue['id']}", json=patch).status_code == 200
    eve = scim_user(harness.entra, "eve")
    assert harness.entra.delete(f"/Users/{eve['id']}").status_code == 204
    users = harness.runtime.users
    with harness.runtime.store.writing() as session:
        for name in ("ann", "dana", "dora", "carl"):
            report = directory_report(name, SourceStatus.ENABLED)
            users.apply_report(session, DIRECTORY_SOURCE, report, Trigger.BULK)
        report = directory_report("dana", SourceStatus.EXPIRED)
        users.apply_report(session, DIRECTORY_SOURCE, report, Trigger.BULK)
    ids = {name: gateway_id(harness, name) for name in SOURCES}
    harness.runtime.user_admin.disable(OPS, ids["dora"])
    with harness.runtime.store.writing() as session:
        carl = session.get_one(User, ids["carl"])
        write_state(carl, mark_never_used(state_of(carl), CARL_PENDING_SINCE), CARL_PENDING_SINCE)
        carl.pending_deletion_since = CARL_PENDING_SINCE
        for name, gid in ids.items():
            user = session.get_one(User, gid)
            user.last_sync_at = LAST_SYNC[name]
            user.last_auth_at = LAST_AUTH.get(name)
    return ids


def resources(response: Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schemas"] == [LIST]
    found = body.get("Resources", [])
    assert body["totalResults"] == len(found)
    return found


def search(client: Any, scim_filter: str, **params: str) -> list[dict[str, Any]]:
    return resources(client.get("/Users", params={"filter": scim_filter, **params}))


def user_names(found: list[dict[str, Any]]) -> set[str]:
    return {r["userName"] for r in found}


def ordered(client: Any, attribute: str, order: str, scim_filter: str | None = None) -> list[str]:
    params = {"sortBy": f"{GATEWAY}:{attribute}", "sortOrder": order}
    if scim_filter:
        params["filter"] = scim_filter
    return [r["userName"] for r in resources(client.get("/Users", params=params))]


def assert_error(response: Response, status: int, *scim_types: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_MEDIA_TYPE)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_types:
        assert body.get("scimType") in scim_types, body
    assert "Traceback" not in response.text
    return body


def store_rows(harness: Harness) -> list[tuple[Any, ...]]:
    with harness.runtime.store.reading() as session:
        rows = session.execute(
            select(
                User.id,
                User.source_id,
                User.user_name,
                User.display_name,
                User.status,
                User.disabled_by,
                User.reason,
                User.pending_deletion_since,
                User.version,
            ).order_by(User.id)
        ).all()
    return [tuple(row) for row in rows]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# -- listing -----------------------------------------------------------------------------------


def test_lists_the_users_of_every_source(harness: Harness) -> None:
    ids = populate(harness)
    found = resources(harness.admin.get("/Users"))
    assert {(r["userName"], r[GATEWAY]["source"]) for r in found} == set(SOURCES.items())
    assert {r["id"] for r in found} == set(ids.values())


def test_extension_of_each_user(harness: Harness) -> None:
    ids = populate(harness)
    for name, gid in ids.items():
        response = harness.admin.get(f"/Users/{gid}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert GATEWAY in body["schemas"]
        ext = body[GATEWAY]
        assert ext["source"] == SOURCES[name]
        expected = DISABLED.get(name)
        if expected is None:
            assert (ext["status"], ext.get("disabledBy"), ext.get("reason")) == (
                "active",
                None,
                None,
            )
        else:
            assert (ext["status"], ext["disabledBy"], ext["reason"]) == ("disabled", *expected)
        assert when(ext["lastSync"]) == LAST_SYNC[name]
        if name in LAST_AUTH:
            assert when(ext["lastAuthentication"]) == LAST_AUTH[name]
        else:
            assert ext.get("lastAuthentication") is None
        pending = ext.get("pendingDeletionSince")
        assert (pending is not None) == (name in ("eve", "carl")), (name, ext)


def test_which_users_are_disabled_and_why_in_one_request(harness: Harness) -> None:
    populate(harness)
    found = search(harness.admin, f'{GATEWAY}:status eq "disabled"')
    answer = {
        r["userName"]: (r[GATEWAY]["disabledBy"], r[GATEWAY]["reason"], r[GATEWAY]["source"])
        for r in found
    }
    assert answer == {name: (*why, SOURCES[name]) for name, why in DISABLED.items()}
    assert all(r["active"] is False for r in found)


def test_user_deleted_by_its_source_is_shown_pending_deletion(harness: Harness) -> None:
    ids = populate(harness)
    ext = harness.admin.get(f"/Users/{ids['eve']}").json()[GATEWAY]
    assert (ext["status"], ext["reason"]) == ("disabled", "missing")
    assert when(ext["pendingDeletionSince"]) <= datetime.now(UTC)
    assert when(ext["pendingDeletionSince"]).year >= 2025


def test_phone_provenance(harness: Harness) -> None:
    ids = populate(harness)
    view = harness.runtime.user_admin.add_phone(OPS, ids["ann"], PhoneKind.SMS, "+49 151 2345678")
    number = view.sms_phones[0].number
    ext = harness.admin.get(f"/Users/{ids['ann']}").json()[GATEWAY]
    assert ext["phones"] == [{"value": number, "type": "sms", "primary": True, "manual": True}]


def test_no_password_in_the_admin_view(harness: Harness) -> None:
    body = {"schemas": [USER], "userName": "pat", "password": "Secret-Pa55word"}
    assert harness.scim.post("/Users", json=body).status_code == 201
    response = harness.admin.get("/Users")
    assert response.status_code == 200
    assert "password" not in response.text.lower()
    assert "argon2" not in response.text
    assert "Secret-Pa55word" not in response.text


# -- filters on the extension ------------------------------------------------------------------


EXTENSION_FILTERS = [
    (f'{GATEWAY}:status eq "active"', {"sam", "ann"}),
    (f'{GATEWAY}:source eq "corp"', {"ann", "dana", "dora", "carl"}),
    (f'{GATEWAY}:source eq "scim" and {GATEWAY}:status eq "active"', {"sam"}),
    (f'{GATEWAY}:source ne "corp"', {"sam", "sue", "eve"}),
    (f'{GATEWAY}:disabledBy eq "source"', {"sue", "eve", "dana"}),
    (f'{GATEWAY}:disabledBy eq "admin"', {"dora"}),
    (f'{GATEWAY}:disabledBy eq "cleanup"', {"carl"}),
    (f"{GATEWAY}:disabledBy pr", set(DISABLED)),
    (f"not ({GATEWAY}:disabledBy pr)", {"sam", "ann"}),
    (f'{GATEWAY}:reason eq "missing"', {"eve"}),
    (f'{GATEWAY}:reason sw "source_"', {"sue", "dana"}),
    (f'{GATEWAY}:reason eq "never_used"', {"carl"}),
    (f"{GATEWAY}:pendingDeletionSince pr", {"eve", "carl"}),
    (f'{GATEWAY}:pendingDeletionSince lt "2025-01-01T00:00:00Z"', {"carl"}),
    (f'{GATEWAY}:lastSync gt "2025-01-04T12:00:00Z"', {"dana", "dora", "carl"}),
    (f'{GATEWAY}:lastSync le "2025-01-02T09:00:00Z"', {"sam", "sue"}),
    (f'{GATEWAY}:lastAuthentication ge "2024-02-10T09:00:00Z"', {"dana", "sam"}),
    (f'{GATEWAY}:lastAuthentication lt "2024-02-01T00:00:00Z"', {"ann"}),
    (f"not ({GATEWAY}:lastAuthentication pr)", {"sue", "eve", "dora", "carl"}),
    (f'userName sw "d" and {GATEWAY}:status eq "disabled"', {"dana", "dora"}),
    (f'({GATEWAY}:reason eq "admin" or {GATEWAY}:reason eq "missing")', {"dora", "eve"}),
]


@pytest.mark.parametrize(
    ("scim_filter", "expected"),
    EXTENSION_FILTERS,
    ids=[f.replace(GATEWAY, "gw") for f, _ in EXTENSION_FILTERS],
)
def test_filter_on_the_extension(harness: Harness, scim_filter: str, expected: set[str]) -> None:
    populate(harness)
    assert user_names(search(harness.admin, scim_filter)) == expected


def test_filter_on_core_attributes_spans_sources(harness: Harness) -> None:
    populate(harness)
    assert user_names(search(harness.admin, 'userName eq "EVE"')) == {"eve"}
    assert user_names(search(harness.admin, "active eq false")) == set(DISABLED)


# -- sorting on the extension ------------------------------------------------------------------


def test_sort_by_last_sync(harness: Harness) -> None:
    populate(harness)
    by_time = sorted(LAST_SYNC, key=LAST_SYNC.__getitem__)
    assert ordered(harness.admin, "lastSync", "ascending") == by_time
    assert ordered(harness.admin, "lastSync", "descending") == by_time[::-1]


def test_sort_by_last_authentication(harness: Harness) -> None:
    populate(harness)
    present = f"{GATEWAY}:lastAuthentication pr"
    assert ordered(harness.admin, "lastAuthentication", "ascending", present) == [
        "ann",
        "dana",
        "sam",
    ]
    assert ordered(harness.admin, "lastAuthentication", "descending", present) == [
        "sam",
        "dana",
        "ann",
    ]


def test_sort_by_pending_deletion_since(harness: Harness) -> None:
    populate(harness)
    present = f"{GATEWAY}:pendingDeletionSince pr"
    assert ordered(harness.admin, "pendingDeletionSince", "ascending", present) == ["carl", "eve"]
    assert ordered(harness.admin, "pendingDeletionSince", "descending", present) == ["eve", "carl"]


def _sorted_values(harness: Harness, attribute: str, order: str, scim_filter: str | None) -> None:
    params = {"sortBy": f"{GATEWAY}:{attribute}", "sortOrder": order}
    if scim_filter:
        params["filter"] = scim_filter
    found = resources(harness.admin.get("/Users", params=params))
    values = [r[GATEWAY][attribute] for r in found]
    assert values == sorted(values, reverse=order == "descending")
    assert len(values) == (len(DISABLED) if scim_filter else len(SOURCES))


@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize(
    ("attribute", "scim_filter"),
    [
        ("source", None),
        ("status", None),
        ("disabledBy", f"{GATEWAY}:disabledBy pr"),
        ("reason", f"{GATEWAY}:reason pr"),
    ],
)
def test_sort_by_extension_strings(
    harness: Harness, attribute: str, scim_filter: str | None, order: str
) -> None:
    populate(harness)
    _sorted_values(harness, attribute, order, scim_filter)


def test_sort_by_reason_gives_the_exact_order(harness: Harness) -> None:
    populate(harness)
    assert ordered(harness.admin, "reason", "ascending", f"{GATEWAY}:reason pr") == [
        "dora",
        "eve",
        "carl",
        "sue",
        "dana",
    ]


# -- schema discovery --------------------------------------------------------------------------


def test_schemas_declare_the_extension(harness: Harness) -> None:
    response = harness.admin.get("/Schemas")
    assert response.status_code == 200, response.text
    listed = response.json().get("Resources", [])
    [schema] = [s for s in listed if s["id"] == GATEWAY]
    assert {a["name"] for a in schema["attributes"]} >= EXTENSION_ATTRIBUTES
    one = harness.admin.get(f"/Schemas/{GATEWAY}")
    assert one.status_code == 200, one.text
    assert {a["name"] for a in one.json()["attributes"]} >= EXTENSION_ATTRIBUTES


def test_extension_attributes_are_read_only(harness: Harness) -> None:
    schema = harness.admin.get(f"/Schemas/{GATEWAY}").json()
    mutability = {a["name"]: a.get("mutability") for a in schema["attributes"]}
    assert {mutability[name] for name in EXTENSION_ATTRIBUTES} == {"readOnly"}


def test_resource_types_declare_the_extension(harness: Harness) -> None:
    response = harness.admin.get("/ResourceTypes")
    assert response.status_code == 200, response.text
    listed = response.json().get("Resources", [])
    [user_type] = [t for t in listed if t["name"] == "User"]
    assert GATEWAY in {e["schema"] for e in user_type.get("schemaExtensions", [])}
    one = harness.admin.get("/ResourceTypes/User")
    assert one.status_code == 200, one.text
    assert GATEWAY in {e["schema"] for e in one.json().get("schemaExtensions", [])}


# -- read-only ---------------------------------------------------------------------------------


def _writes(client: Any, gid: str) -> list[Response]:
    body = {"schemas": [USER], "userName": "intruder", "displayName": "X"}
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "X"}],
    }
    return [
        client.post("/Users", json=body),
        client.put(f"/Users/{gid}", json={**body, "userName": "sam"}),
        client.patch(f"/Users/{gid}", json=patch),
        client.delete(f"/Users/{gid}"),
    ]


@pytest.mark.parametrize("who", ["admin", "helpdesk"])
def test_writes_are_405_and_change_nothing(harness: Harness, who: str) -> None:
    ids = populate(harness)
    before = store_rows(harness)
    for target in ("sam", "ann"):
        for response in _writes(getattr(harness, who), ids[target]):
            assert_error(response, 405)
    assert store_rows(harness) == before
    assert (
        harness.scim.get("/Users", params={"filter": 'userName eq "intruder"'}).json()[
            "totalResults"
        ]
        == 0
    )


# -- who may read ------------------------------------------------------------------------------


def test_help_desk_can_read(harness: Harness) -> None:
    ids = populate(harness)
    found = resources(harness.helpdesk.get("/Users"))
    assert user_names(found) == set(SOURCES)
    one = harness.helpdesk.get(f"/Users/{ids['dora']}")
    assert one.status_code == 200
    assert one.json()[GATEWAY]["disabledBy"] == "admin"
    answer = search(harness.helpdesk, f'{GATEWAY}:status eq "disabled"')
    assert user_names(answer) == set(DISABLED)


@pytest.mark.parametrize("token", [SCIM_TOKEN, ENTRA_TOKEN, None, "not-a-token"])
def test_source_token_on_the_admin_view_is_401(harness: Harness, token: str | None) -> None:
    ids = populate(harness)
    client = harness.client("/scim/v2", token)
    for response in (
        client.get("/Users"),
        client.get(f"/Users/{ids['sam']}"),
        client.get("/Users", params={"filter": f'{GATEWAY}:status eq "disabled"'}),
        client.post("/Users/.search", json={"schemas": []}),
    ):
        body = assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "sam" not in str(body)


@pytest.mark.parametrize("token", [ADMIN_TOKEN, HELPDESK_TOKEN])
@pytest.mark.parametrize("source", [SCIM_SOURCE, ENTRA_SOURCE])
def test_admin_token_on_a_provisioning_endpoint_is_401(
    harness: Harness, token: str, source: str
) -> None:
    populate(harness)
    before = store_rows(harness)
    client = harness.client(f"/scim/v2/sources/{source}", token)
    body = {"schemas": [USER], "userName": "intruder"}
    for response in (
        client.get("/Users"),
        client.post("/Users", json=body),
        client.get("/Groups"),
    ):
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert store_rows(harness) == before
