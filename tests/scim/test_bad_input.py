"""What a broken or hostile client can send the SCIM front (RFC 7644 §3.12): each request gets a
SCIM Error with the right status and scimType, no traceback and no Python class name in it,
and nothing is written (the store is compared before and after).

Injection strings in filters and ids must give a clean 400/404 (or a 200 that finds exactly
what the filter means), never a 500 and never more users than intended.
"""

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from httpx import Response
from sqlalchemy import func, select

from store.models import AuditEvent, Group, GroupMember, User
from tests.scim.harness import (
    ADMIN_TOKEN,
    ENTRA_SOURCE,
    ENTRA_TOKEN,
    SCIM_MEDIA_TYPE,
    SCIM_SOURCE,
    SCIM_TOKEN,
    Harness,
    RawResponse,
    raw_request,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GATEWAY = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"
MIB = 1024 * 1024
#: Below httpx's limit on a URL's query.
MAX_QUERY = 60_000

# What must never reach a client: tracebacks, source paths, library and class names.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|sqlalchemy|psycopg|sqlite|pydantic|scim2_|starlette|"
    r"<class |\b0x[0-9a-f]{6,}\b|\b[A-Z][A-Za-z]*(?:Error|Exception)\b"
)


# -- helpers ---------------------------------------------------------------------------------


def assert_clean(response: Response) -> None:
    leak = LEAKS.search(response.text)
    assert leak is None, f"{leak.group(0)!r} in {response.text[:2000]}"


def assert_error(response: Response, status: int | tuple[int, ...], *scim_types: str) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text[:2000]
    assert response.headers["content-type"].startswith(SCIM_MEDIA_TYPE)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(response.status_code)
    if scim_types:
        assert body.get("scimType") in scim_types, body
    assert_clean(response)


def snapshot(harness: Harness) -> dict[str, Any]:
    with harness.runtime.store.reading() as session:
        users = session.execute(
            select(
                User.id,
                User.source_id,
                User.user_name,
                User.display_name,
                User.status,
                User.pending_deletion_since,
                User.password_hash,
                User.version,
            ).order_by(User.id)
        ).all()
        groups = session.execute(
            select(Group.id, Group.display_name, Group.version).order_by(Group.id)
        ).all()
        members = session.execute(
            select(GroupMember.group_id, GroupMember.user_id).order_by(
                GroupMember.group_id, GroupMember.user_id
            )
        ).all()
        audit = session.scalar(select(func.count()).select_from(AuditEvent))
    return {
        "users": [tuple(r) for r in users],
        "groups": [tuple(r) for r in groups],
        "members": [tuple(r) for r in members],
        "audit": audit,
    }


def create_user(client: Any, user_name: str, **attributes: Any) -> dict[str, Any]:
    response = client.post("/Users", json={"schemas": [USER], "userName": user_name, **attributes})
    assert response.status_code == 201, response.text
    return response.json()


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def found(response: Response) -> set[str]:
    assert response.status_code == 200, response.text[:2000]
    body = response.json()
    assert body["schemas"] == [LIST]
    resources = body.get("Resources", [])
    assert body["totalResults"] == len(resources)
    return {r["userName"] for r in resources}


#: Requests refused before any store is asked (headers, the query, the path): one store is
#: enough, and the suite's time goes to the cases where the store answers.
ONE_STORE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def seeded(harness: Harness) -> tuple[Harness, dict[str, dict[str, Any]]]:
    """Three scim users, a scim group and an entra user; the test then sends its bad request."""
    users = {
        name: create_user(harness.scim, name, displayName=name.title())
        for name in ("alice", "bob", "carol")
    }
    email = [{"value": "alice@example.org", "type": "work"}]
    patched = harness.scim.patch(
        f"/Users/{users['alice']['id']}",
        json=patch_body({"op": "add", "path": "emails", "value": email}),
    )
    assert patched.status_code == 200, patched.text
    group = harness.scim.post(
        "/Groups",
        json={
            "schemas": [GROUP],
            "displayName": "staff",
            "members": [{"value": users["bob"]["id"]}],
        },
    )
    assert group.status_code == 201, group.text
    users["staff"] = group.json()
    users["eve"] = create_user(harness.entra, "eve")
    return harness, users


def unchanged(harness: Harness, before: dict[str, Any]) -> None:
    assert snapshot(harness) == before


# -- bodies ------------------------------------------------------------------------------------


MALFORMED = [
    b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"',
    b"{'userName': 'x'}",
    b"not json at all",
    b'{"userName": "x",}',
    b"\xff\xfe\x00garbage",
    b"",
]


@pytest.mark.parametrize("content", MALFORMED)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "SEARCH"])
def test_malformed_json_is_400_invalid_syntax(seeded: Any, content: bytes, method: str) -> None:
    harness, users = seeded
    before = snapshot(harness)
    target = {
        "POST": ("POST", "/Users"),
        "PUT": ("PUT", f"/Users/{users['alice']['id']}"),
        "PATCH": ("PATCH", f"/Users/{users['alice']['id']}"),
        "SEARCH": ("POST", "/Users/.search"),
    }[method]
    response = harness.scim.request(
        *target, content=content, headers={"Content-Type": SCIM_MEDIA_TYPE}
    )
    assert_error(response, 400, "invalidSyntax")
    unchanged(harness, before)


def test_json_that_is_not_an_object_is_400(seeded: Any) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    for content in (b"[]", b'"userName"', b"42", b"null"):
        response = harness.scim.post(
            "/Users", content=content, headers={"Content-Type": SCIM_MEDIA_TYPE}
        )
        assert_error(response, 400, "invalidSyntax", "invalidValue")
    unchanged(harness, before)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data"],
)
def test_wrong_content_type_is_refused(seeded: Any, content_type: str) -> None:
    harness, users = seeded
    before = snapshot(harness)
    body = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory"}'
    headers = {"Content-Type": content_type}
    for response in (
        harness.scim.post("/Users", content=body, headers=headers),
        harness.scim.put(f"/Users/{users['alice']['id']}", content=body, headers=headers),
    ):
        assert_error(response, (400, 415))
    unchanged(harness, before)


def test_scim_and_plain_json_media_types_are_both_accepted(harness: Harness) -> None:
    body = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "%s"}'
    for name, media_type in (("one", SCIM_MEDIA_TYPE), ("two", "application/json")):
        response = harness.scim.post(
            "/Users", content=body % name.encode(), headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith(SCIM_MEDIA_TYPE)


@pytest.mark.parametrize(
    "schemas",
    [
        ["urn:example:params:scim:schemas:core:2.0:Nobody"],
        [USER, "urn:example:params:scim:schemas:extension:acme:2.0:User"],
        [GROUP],
        [],
        "urn:ietf:params:scim:schemas:core:2.0:User",
    ],
    ids=["unknown", "unknown-extension", "group-on-users", "empty", "not-a-list"],
)
def test_unknown_schema_is_400(seeded: Any, schemas: Any) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    response = harness.scim.post("/Users", json={"schemas": schemas, "userName": "mallory"})
    assert_error(response, 400, "invalidSyntax", "invalidValue")
    unchanged(harness, before)


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [USER], "displayName": "No Name"},
        {"schemas": [USER], "userName": None},
        {"schemas": [USER], "userName": ""},
        {"schemas": [USER], "userName": 42},
        {"schemas": [USER], "userName": ["a", "b"]},
    ],
    ids=["missing", "null", "empty", "number", "list"],
)
def test_missing_or_invalid_user_name_is_400_invalid_value(seeded: Any, body: Any) -> None:
    harness, users = seeded
    before = snapshot(harness)
    assert_error(harness.scim.post("/Users", json=body), 400, "invalidValue", "invalidSyntax")
    response = harness.scim.put(f"/Users/{users['alice']['id']}", json=body)
    assert_error(response, 400, "invalidValue", "invalidSyntax")
    unchanged(harness, before)


def test_missing_user_name_is_invalid_value(seeded: Any) -> None:
    harness, _ = seeded
    response = harness.scim.post("/Users", json={"schemas": [USER], "displayName": "No Name"})
    assert_error(response, 400, "invalidValue")


def test_wrong_attribute_type_is_400(seeded: Any) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    for body in (
        {"schemas": [USER], "userName": "mallory", "active": "maybe"},
        {"schemas": [USER], "userName": "mallory", "emails": "a@example.org"},
        {"schemas": [USER], "userName": "mallory", "name": "Mallory"},
    ):
        assert_error(harness.scim.post("/Users", json=body), 400, "invalidValue", "invalidSyntax")
    unchanged(harness, before)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_one_mib_is_413(seeded: Any, method: str, chunked: bool) -> None:
    harness, users = seeded
    before = snapshot(harness)
    filler = "x" * (MIB + 1024)
    if method == "PATCH":
        payload = patch_body({"op": "replace", "path": "displayName", "value": filler})
    else:
        payload = {"schemas": [USER], "userName": "mallory", "displayName": filler}
    data = json.dumps(payload).encode()
    content: Any = (
        iter([data[i : i + 65536] for i in range(0, len(data), 65536)]) if chunked else data
    )
    path = "/Users" if method == "POST" else f"/Users/{users['alice']['id']}"
    response = harness.scim.request(
        method, path, content=content, headers={"Content-Type": SCIM_MEDIA_TYPE}
    )
    assert_error(response, 413)
    unchanged(harness, before)


@pytest.mark.parametrize(
    "attributes",
    [{"userName": "u" * 300}, {"userName": "long", "displayName": "d" * 10_000}],
    ids=["user-name", "display-name"],
)
def test_overlong_value_is_400_or_stored_whole(
    harness: Harness, attributes: dict[str, str]
) -> None:
    # Longer than the store's columns: refused cleanly, or kept as sent; never a database error.
    response = harness.scim.post("/Users", json={"schemas": [USER], **attributes})
    if response.status_code == 201:
        got = harness.scim.get(f"/Users/{response.json()['id']}").json()
        assert {key: got[key] for key in attributes} == attributes
    else:
        assert_error(response, 400, "invalidValue")


# -- filters -----------------------------------------------------------------------------------


BAD_FILTERS = [
    "userName eq",
    'userName eq "x" and',
    '(userName eq "x"',
    'userName eq "x")',
    'userName foo "x"',
    'userName eq "unterminated',
    'eq "x"',
    '"x" eq userName',
    'userName pr "x"',
    'emails[type eq "work"',
    'emails[type eq "work"]]',
    "and",
    "not userName pr",
    'userName eq "x" or or userName eq "y"',
    "userName eq 'x'",
    'userName eq "x" garbage',
    'userName eq "alice" or 1 eq 1',
    'userName eq "alice"; DROP TABLE users; --',
    'userName) or (1=1 eq "x"',
]


@pytest.mark.parametrize("scim_filter", BAD_FILTERS)
def test_bad_filter_is_400_invalid_filter(seeded: Any, scim_filter: str) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"filter": scim_filter})
    assert_error(response, 400, "invalidFilter")
    search = harness.scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": scim_filter})
    assert_error(search, 400, "invalidFilter")


OUTSIDE_THE_ALLOW_LIST = [
    'password eq "x"',
    "password pr",
    "passwordHash pr",
    "password_hash pr",
    'adminNotes eq "x"',
    'admin_notes co "x"',
    'source_id eq "entra"',
    'user_name eq "alice"',
    'nonexistent eq "x"',
    f'{GATEWAY}:status eq "disabled"',
    'userName eq "alice" or password pr',
    'emails[secret eq "x"]',
    'name.secret eq "x"',
]


@pytest.mark.parametrize("scim_filter", OUTSIDE_THE_ALLOW_LIST)
def test_filter_outside_the_allow_list_is_400_invalid_filter(seeded: Any, scim_filter: str) -> None:
    harness, _ = seeded
    assert_error(harness.scim.get("/Users", params={"filter": scim_filter}), 400, "invalidFilter")


@pytest.mark.parametrize(
    "scim_filter", ['password eq "x"', 'secret eq "x"', 'members.secret eq "x"', "displayName eq"]
)
def test_bad_group_filter_is_400_invalid_filter(seeded: Any, scim_filter: str) -> None:
    harness, _ = seeded
    assert_error(harness.scim.get("/Groups", params={"filter": scim_filter}), 400, "invalidFilter")


def test_admin_view_filter_outside_the_allow_list_is_400(seeded: Any) -> None:
    harness, _ = seeded
    for scim_filter in ('password eq "x"', f'{GATEWAY}:adminNotes eq "x"', f"{GATEWAY}:nope pr"):
        response = harness.admin.get("/Users", params={"filter": scim_filter})
        assert_error(response, 400, "invalidFilter")


# -- paging parameters (RFC 7644 §3.4.2.4) -----------------------------------------------------


@pytest.mark.parametrize("start", ["0", "-5"])
def test_start_index_below_one_is_treated_as_one(seeded: Any, start: str) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"startIndex": start, "sortBy": "userName"})
    assert [r["userName"] for r in response.json()["Resources"]] == ["alice", "bob", "carol"]
    body = response.json()
    assert (body["startIndex"], body["totalResults"]) == (1, 3)


def test_negative_count_is_treated_as_zero(seeded: Any) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"count": "-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("Resources", []) == []
    assert body["totalResults"] == 3


def test_huge_count_is_capped_at_max_results(seeded: Any) -> None:
    harness, _ = seeded
    config = harness.anonymous.get("/scim/v2/sources/scim/ServiceProviderConfig")
    assert config.status_code == 200, config.text
    max_results = config.json()["filter"]["maxResults"]
    assert max_results > 0
    response = harness.scim.get("/Users", params={"count": "100000"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["itemsPerPage"] == len(body["Resources"]) == 3 <= max_results
    assert body["totalResults"] == 3


def test_search_start_index_and_count_out_of_range(seeded: Any) -> None:
    harness, _ = seeded
    body = {"schemas": [SEARCH], "startIndex": 0, "count": -1}
    response = harness.scim.post("/Users/.search", json=body)
    assert response.status_code == 200, response.text
    assert response.json().get("Resources", []) == []
    assert response.json()["totalResults"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"startIndex": "abc"},
        {"count": "abc"},
        {"startIndex": "1.5"},
        {"count": "1e3"},
        {"startIndex": "1 OR 1=1"},
        {"count": ""},
    ],
    ids=["start-abc", "count-abc", "start-float", "count-exp", "start-sql", "count-empty"],
)
def test_non_numeric_paging_is_400_invalid_value(seeded: Any, params: dict[str, str]) -> None:
    harness, _ = seeded
    assert_error(harness.scim.get("/Users", params=params), 400, "invalidValue")


def test_huge_start_index_finds_nothing(seeded: Any) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"startIndex": str(2**70)})
    if response.status_code == 400:
        assert_error(response, 400, "invalidValue")
    else:
        assert response.status_code == 200, response.text[:2000]
        assert response.json().get("Resources", []) == []
        assert response.json()["totalResults"] == 3


# -- PATCH (RFC 7644 §3.5.2) -------------------------------------------------------------------


def _patch_is_refused(seeded: Any, operations: list[dict[str, Any]], *scim_types: str) -> None:
    harness, users = seeded
    before = snapshot(harness)
    alice = users["alice"]["id"]
    response = harness.scim.patch(f"/Users/{alice}", json=patch_body(*operations))
    assert_error(response, 400, *scim_types)
    unchanged(harness, before)
    assert harness.scim.get(f"/Users/{alice}").json()["userName"] == "alice"


def test_patch_removing_user_name_is_400(seeded: Any) -> None:
    # userName is required (RFC 7643 §4.1.1); removing it leaves the resource invalid.
    _patch_is_refused(
        seeded, [{"op": "remove", "path": "userName"}], "mutability", "invalidValue", "noTarget"
    )


def test_patch_replacing_user_name_with_null_is_400(seeded: Any) -> None:
    _patch_is_refused(
        seeded, [{"op": "replace", "path": "userName", "value": None}], "invalidValue", "mutability"
    )


def test_failing_operation_undoes_the_whole_patch(seeded: Any) -> None:
    # RFC 7644 §3.5.2: operations are applied atomically; one failure leaves nothing changed.
    operations = [
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "remove", "path": "userName"},
    ]
    _patch_is_refused(seeded, operations)


@pytest.mark.parametrize(
    "path", ["id", "meta", "meta.created", "meta.lastModified", "meta.version", "groups"]
)
def test_patch_on_read_only_attribute_is_400_mutability(seeded: Any, path: str) -> None:
    _patch_is_refused(seeded, [{"op": "replace", "path": path, "value": "x"}], "mutability")


@pytest.mark.parametrize(
    "path",
    [
        "doesNotExist",
        "name.nonsense",
        'emails[type eq "work"].nonsense',
        "urn:example:params:scim:schemas:extension:acme:2.0:User:thing",
        f"{GATEWAY}:status",
        "adminNotes",
    ],
)
def test_patch_path_that_does_not_exist_is_400(seeded: Any, path: str) -> None:
    _patch_is_refused(
        seeded, [{"op": "replace", "path": path, "value": "x"}], "invalidPath", "noTarget"
    )


@pytest.mark.parametrize("path", ['emails[type eq "work"', "name..givenName", "[x]", "a b"])
def test_patch_path_that_does_not_parse_is_400_invalid_path(seeded: Any, path: str) -> None:
    _patch_is_refused(
        seeded, [{"op": "replace", "path": path, "value": "x"}], "invalidPath", "invalidFilter"
    )


def test_patch_remove_without_path_is_400_no_target(seeded: Any) -> None:
    _patch_is_refused(seeded, [{"op": "remove"}], "noTarget")


def test_unknown_op_is_400(seeded: Any) -> None:
    # RFC 7644 §3.12 fits both: scim2-models reads an op outside add/remove/replace as a value
    # the "op" member does not take (invalidValue).
    _patch_is_refused(
        seeded,
        [{"op": "frobnicate", "path": "displayName", "value": "x"}],
        "invalidSyntax",
        "invalidValue",
    )


@pytest.mark.parametrize("kind", ["delete", "", None, 1])
def test_invalid_op_is_400(seeded: Any, kind: Any) -> None:
    _patch_is_refused(
        seeded, [{"op": kind, "path": "displayName", "value": "x"}], "invalidSyntax", "invalidValue"
    )


def test_capitalised_op_is_read_as_its_lower_case(seeded: Any) -> None:
    # Decision (README, SCIM front): "Replace" cannot be mistaken for another operation, so
    # every source reads it, as scim2-models does; "strict" refuses Entra's own readings.
    harness, users = seeded
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "x"}],
    }
    response = harness.scim.patch(f"/Users/{users['alice']['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "x"


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": "replace"},
        {"schemas": [USER], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]},
        {"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]},
    ],
    ids=["no-operations", "operations-not-a-list", "wrong-schema", "no-schemas"],
)
def test_malformed_patch_request_is_400(seeded: Any, body: dict[str, Any]) -> None:
    harness, users = seeded
    before = snapshot(harness)
    response = harness.scim.patch(f"/Users/{users['alice']['id']}", json=body)
    assert_error(response, 400, "invalidSyntax", "invalidValue")
    unchanged(harness, before)


def test_put_cannot_change_the_id(seeded: Any) -> None:
    harness, users = seeded
    alice = users["alice"]["id"]
    body = {"schemas": [USER], "id": users["bob"]["id"], "userName": "alice", "displayName": "Z"}
    response = harness.scim.put(f"/Users/{alice}", json=body)
    if response.status_code == 200:
        assert response.json()["id"] == alice  # readOnly: ignored (RFC 7643 §2.2)
    else:
        assert_error(response, 400, "mutability", "invalidValue")
    assert harness.scim.get(f"/Users/{users['bob']['id']}").json()["displayName"] == "Bob"


# -- tokens ------------------------------------------------------------------------------------


def _every_request(client: Any, user_id: str, group_id: str) -> Iterator[Response]:
    user = {"schemas": [USER], "userName": "mallory"}
    group = {"schemas": [GROUP], "displayName": "mallory"}
    change = patch_body({"op": "replace", "path": "displayName", "value": "pwned"})
    yield client.get("/Users")
    yield client.get("/Users", params={"filter": "userName pr"})
    yield client.get(f"/Users/{user_id}")
    yield client.post("/Users", json=user)
    yield client.post("/Users/.search", json={"schemas": [SEARCH]})
    yield client.put(f"/Users/{user_id}", json={**user, "userName": "pwned"})
    yield client.patch(f"/Users/{user_id}", json=change)
    yield client.delete(f"/Users/{user_id}")
    yield client.get("/Groups")
    yield client.get(f"/Groups/{group_id}")
    yield client.post("/Groups", json=group)
    yield client.put(f"/Groups/{group_id}", json={**group, "displayName": "pwned"})
    yield client.patch(f"/Groups/{group_id}", json=change)
    yield client.delete(f"/Groups/{group_id}")


def _assert_unauthorized(response: Response) -> None:
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "alice" not in response.text
    assert "staff" not in response.text


def test_entra_token_on_the_scim_source_is_401_everywhere(seeded: Any) -> None:
    harness, users = seeded
    before = snapshot(harness)
    client = harness.client(f"/scim/v2/sources/{SCIM_SOURCE}", ENTRA_TOKEN)
    for response in _every_request(client, users["alice"]["id"], users["staff"]["id"]):
        _assert_unauthorized(response)
    unchanged(harness, before)


def test_scim_token_on_the_entra_source_is_401_everywhere(seeded: Any) -> None:
    harness, users = seeded
    group = harness.entra.post("/Groups", json={"schemas": [GROUP], "displayName": "entra-g"})
    assert group.status_code == 201, group.text
    before = snapshot(harness)
    client = harness.client(f"/scim/v2/sources/{ENTRA_SOURCE}", SCIM_TOKEN)
    for response in _every_request(client, users["eve"]["id"], group.json()["id"]):
        assert_error(response, 401)
        assert "eve" not in response.text
    unchanged(harness, before)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {SCIM_TOKEN}x",
        f"Bearer {SCIM_TOKEN[:-1]}",
        f"Basic {SCIM_TOKEN}",
        f"Bearer {SCIM_TOKEN} {SCIM_TOKEN}",
        SCIM_TOKEN,
    ],
    ids=[
        "none",
        "empty",
        "scheme-only",
        "scheme-space",
        "longer",
        "shorter",
        "basic",
        "two",
        "bare",
    ],
)
def test_bad_authorization_header_is_401_everywhere(seeded: Any, header: str | None) -> None:
    harness, users = seeded
    before = snapshot(harness)
    client = harness.client(f"/scim/v2/sources/{SCIM_SOURCE}", None)
    if header is not None:
        client.headers["Authorization"] = header
    for response in _every_request(client, users["alice"]["id"], users["staff"]["id"]):
        _assert_unauthorized(response)
    unchanged(harness, before)


@pytest.mark.parametrize(
    "base",
    [
        "/scim/v2/sources/corp",
        "/scim/v2/sources/nosuch",
        "/scim/v2/sources/scim%2F..%2Fentra",
        "/scim/v2/sources/scim/..%2Fentra",
        "/scim/v2/sources/%2e%2e",
    ],
)
def test_a_token_reaches_no_other_source(seeded: Any, base: str) -> None:
    harness, users = seeded
    before = snapshot(harness)
    client = harness.client(base, SCIM_TOKEN)
    for response in (
        client.get("/Users"),
        client.get(f"/Users/{users['eve']['id']}"),
        client.post("/Users", json={"schemas": [USER], "userName": "mallory"}),
        client.delete(f"/Users/{users['eve']['id']}"),
    ):
        assert_error(response, (401, 404))
        assert "eve" not in response.text
    unchanged(harness, before)


def test_ids_of_another_source_are_404(seeded: Any) -> None:
    harness, users = seeded
    before = snapshot(harness)
    eve = users["eve"]["id"]
    change = patch_body({"op": "replace", "path": "displayName", "value": "pwned"})
    for response in (
        harness.scim.get(f"/Users/{eve}"),
        harness.scim.put(f"/Users/{eve}", json={"schemas": [USER], "userName": "pwned"}),
        harness.scim.patch(f"/Users/{eve}", json=change),
        harness.scim.delete(f"/Users/{eve}"),
    ):
        assert_error(response, 404)
        assert "eve" not in response.text
    assert found(harness.scim.get("/Users", params={"filter": f'id eq "{eve}"'})) == set()
    unchanged(harness, before)


# -- injection ---------------------------------------------------------------------------------


def _filter_answer(harness: Harness, scim_filter: str, intended: set[str]) -> None:
    """A 400 invalidFilter, or a 200 that finds exactly the intended users; never a 500.

    Sent as a query and as a /.search body; filters too long for a URL (httpx refuses a query
    over 64 KiB) only as a body.
    """
    responses = [
        harness.scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": scim_filter})
    ]
    if len(quote(scim_filter)) < MAX_QUERY:
        responses.append(harness.scim.get("/Users", params={"filter": scim_filter}))
    for response in responses:
        assert response.status_code in (200, 400), response.text[:2000]
        if response.status_code == 400:
            assert_error(response, 400, "invalidFilter")
        else:
            assert found(response) == intended


INJECTIONS = [
    ('userName eq "x\\" or \\"1\\" eq \\"1"', set()),
    ("userName eq \"alice' OR '1'='1\"", set()),
    ('userName eq "\' OR 1=1 --"', set()),
    ('userName eq "alice\\"); DROP TABLE users; --"', set()),
    ('userName co "%"', set()),
    ('userName sw "_"', set()),
    ('userName ew "%"', set()),
    ('userName co "_o_"', set()),
    ('displayName co "%"', set()),
    ('userName co "\\\\"', set()),
    ('userName eq "al%"', set()),
    ('userName sw "al"', {"alice"}),
    ('userName eq "\\u0000"', set()),
    ('userName eq "alice\\u0000"', set()),
    ('userName eq "*"', set()),
    ('userName eq "alice" or userName eq "bob"', {"alice", "bob"}),
    ('emails[value co "%"]', set()),
    ('emails[value co "@"]', {"alice"}),
    ('emails[value co "_"]', set()),
]


@pytest.mark.parametrize(("scim_filter", "intended"), INJECTIONS, ids=[f for f, _ in INJECTIONS])
def test_injection_in_a_filter(seeded: Any, scim_filter: str, intended: set[str]) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    _filter_answer(harness, scim_filter, intended)
    unchanged(harness, before)


def test_nul_byte_in_a_raw_filter(seeded: Any) -> None:
    harness, _ = seeded
    _filter_answer(harness, 'userName eq "ali\x00ce"', set())


def test_deeply_nested_filter(seeded: Any) -> None:
    harness, _ = seeded
    depth = 10_000
    _filter_answer(harness, "(" * depth + 'userName eq "alice"' + ")" * depth, {"alice"})


def test_deeply_nested_not(seeded: Any) -> None:
    harness, _ = seeded
    depth = 10_000
    _filter_answer(harness, "not (" * depth + 'userName eq "alice"' + ")" * depth, {"alice"})


def test_deeply_nested_value_path(seeded: Any) -> None:
    harness, _ = seeded
    depth = 10_000
    nested = "emails[" + "(" * depth + 'value co "@"' + ")" * depth + "]"
    _filter_answer(harness, nested, {"alice"})


def test_hundred_kilobyte_filter_of_many_terms(seeded: Any) -> None:
    harness, _ = seeded
    terms = [f'userName eq "u{i}"' for i in range(6000)]
    scim_filter = " or ".join(terms)
    assert len(scim_filter) > 100_000
    _filter_answer(harness, scim_filter, set())


def test_hundred_kilobyte_filter_value(seeded: Any) -> None:
    harness, _ = seeded
    _filter_answer(harness, 'userName eq "' + "a" * 100_000 + '"', set())


def test_hundred_kilobyte_attribute_name(seeded: Any) -> None:
    harness, _ = seeded
    body = {"schemas": [SEARCH], "filter": "a" * 100_000 + ' eq "x"'}
    assert_error(harness.scim.post("/Users/.search", json=body), 400, "invalidFilter")


@pytest.mark.parametrize(
    "bad_id",
    [
        "' OR 1=1 --",
        "1 OR 1=1",
        '" or "1"="1',
        "%",
        "_",
        "*",
        "null",
        "00000000-0000-0000-0000-000000000000",
        "x" * 10_000,
        "..%2F..%2Fsources%2Fentra%2FUsers",
    ],
    ids=[
        "or-1",
        "or-bare",
        "quotes",
        "percent",
        "underscore",
        "star",
        "null",
        "nil-uuid",
        "long",
        "dots",
    ],
)
def test_injection_in_an_id_is_404(seeded: Any, bad_id: str) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    change = patch_body({"op": "replace", "path": "displayName", "value": "pwned"})
    user = {"schemas": [USER], "userName": "pwned"}
    for response in (
        harness.scim.get(f"/Users/{bad_id}"),
        harness.scim.put(f"/Users/{bad_id}", json=user),
        harness.scim.patch(f"/Users/{bad_id}", json=change),
        harness.scim.delete(f"/Users/{bad_id}"),
        harness.scim.get(f"/Groups/{bad_id}"),
        harness.scim.delete(f"/Groups/{bad_id}"),
        harness.admin.get(f"/Users/{bad_id}"),
    ):
        assert_error(response, 404)
    unchanged(harness, before)


def test_nul_in_an_id_is_404(seeded: Any) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    for path in ("/Users/%00", "/Users/alice%00", "/Groups/%00"):
        assert_error(harness.scim.get(path), 404)
        assert_error(harness.scim.delete(path), 404)
    unchanged(harness, before)


def test_injection_in_an_id_filter(seeded: Any) -> None:
    harness, _ = seeded
    _filter_answer(harness, 'id eq "\' OR 1=1 --"', set())
    _filter_answer(harness, 'id co "-"', {"alice", "bob", "carol"})


def test_injection_in_sort_by(seeded: Any) -> None:
    harness, _ = seeded
    before = snapshot(harness)
    for sort_by in ("userName; DROP TABLE users", "userName desc, (select 1)", "1", "password"):
        response = harness.scim.get("/Users", params={"sortBy": sort_by})
        if response.status_code == 400:
            assert_error(
                response, 400, "invalidValue", "invalidPath", "invalidFilter", "invalidSyntax"
            )
        else:
            assert found(response) == {"alice", "bob", "carol"}
    unchanged(harness, before)
    assert found(harness.scim.get("/Users")) == {"alice", "bob", "carol"}


def test_injection_in_sort_order(seeded: Any) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"sortBy": "userName", "sortOrder": "desc; --"})
    if response.status_code == 400:
        assert_error(response, 400, "invalidValue", "invalidSyntax")
    else:
        assert found(response) == {"alice", "bob", "carol"}


def test_injection_in_attributes(seeded: Any) -> None:
    harness, users = seeded
    for attributes in ("userName,(select 1)", "password", "'; DROP TABLE users; --", "a" * 10_000):
        response = harness.scim.get(
            f"/Users/{users['alice']['id']}", params={"attributes": attributes}
        )
        if response.status_code == 400:
            assert_error(response, 400, "invalidValue", "invalidPath", "invalidSyntax")
        else:
            assert response.status_code == 200, response.text[:2000]
            assert response.json()["id"] == users["alice"]["id"]
            assert "password" not in response.text.lower()


def test_user_name_with_sql_and_filter_syntax_is_stored_verbatim(harness: Harness) -> None:
    # Odd but legal names are data, not syntax: stored, found, and nothing else matches.
    odd = 'o\'brien" or "1"="1 -- %_\\'
    create_user(harness.scim, odd)
    create_user(harness.scim, "plain")
    escaped = odd.replace("\\", "\\\\").replace('"', '\\"')
    assert found(harness.scim.get("/Users", params={"filter": f'userName eq "{escaped}"'})) == {odd}


def test_no_error_leaks_internals(seeded: Any) -> None:
    """A battery of bad requests: every answer is a clean SCIM error."""
    harness, users = seeded
    alice = users["alice"]["id"]
    headers = {"Content-Type": SCIM_MEDIA_TYPE}
    responses = [
        harness.scim.post("/Users", content=b"{", headers=headers),
        harness.scim.post("/Users", content=b'{"schemas": 5, "userName": {}}', headers=headers),
        harness.scim.post("/Users", json={"schemas": [USER], "userName": "x", "emails": [1, 2]}),
        harness.scim.patch(f"/Users/{alice}", json={"schemas": [PATCH_OP], "Operations": [5]}),
        harness.scim.patch(f"/Users/{alice}", json=patch_body({"op": "add", "path": 5})),
        harness.scim.get("/Users", params={"filter": "(((("}),
        harness.scim.get("/Users", params={"filter": 'meta.lastModified gt "yesterday"'}),
        harness.scim.get("/Users", params={"filter": 'active eq "maybe"'}),
        harness.scim.get("/Users", params={"count": "x"}),
        harness.scim.get("/Nothing"),
        harness.scim.request("TRACE", "/Users"),
        harness.scim.put("/Users", json={"schemas": [USER], "userName": "x"}),
        harness.scim.post("/Groups", json={"schemas": [GROUP], "members": "all"}),
        harness.scim.post(
            "/Groups", json={"schemas": [GROUP], "displayName": "g", "members": [{"value": "nope"}]}
        ),
    ]
    for response in responses:
        assert response.status_code >= 400, response.text[:2000]
        assert response.status_code < 500, response.text[:2000]
        assert_error(response, response.status_code)


# -- bytes that are not text (RFC 9110 §5.5; issue 22) -----------------------------------------
#
# TestClient re-encodes a header's value as UTF-8; `raw_request` hands the app the bytes an HTTP
# server passes through (obs-text, 0x80-0xFF) and those it would not (controls).

NOT_TEXT = [b"caf\xe9", b"\xff\xfe", b"\xc3", b"a\x00b", b"a\x01b", b"a\x7fb", b"a\r\nX-Y: z"]
NOT_TEXT_IDS = ["latin-1", "bom-16", "cut-short", "nul", "soh", "del", "crlf"]
SCIM_AUTH = [(b"authorization", f"Bearer {SCIM_TOKEN}".encode())]
ADMIN_AUTH = [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]
JSON_BODY = [(b"content-type", SCIM_MEDIA_TYPE.encode())]


def assert_raw_error(response: RawResponse, status: int, scim_type: str | None = None) -> None:
    assert response.status == status, response.body[:2000]
    assert response.headers["content-type"].startswith(SCIM_MEDIA_TYPE)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    leak = LEAKS.search(response.body.decode())
    assert leak is None, response.body[:2000]


def test_issue_22_user_agent_not_utf8_on_service_provider_config(harness: Harness) -> None:
    response = raw_request(
        harness.app,
        "GET",
        f"/scim/v2/sources/{SCIM_SOURCE}/ServiceProviderConfig",
        headers=[(b"user-agent", b"caf\xe9")],
    )
    # No scimType: Table 9's types are for bodies, attributes and filters (UnreadableHeader).
    assert_raw_error(response, 400)
    assert "user-agent" in response.json()["detail"]


def test_issue_22_bearer_token_not_utf8_is_the_wrong_token_answer(harness: Harness) -> None:
    path = f"/scim/v2/sources/{SCIM_SOURCE}/Users"
    bad = raw_request(harness.app, "GET", path, headers=[(b"authorization", b"Bearer \xff\xfe")])
    wrong = raw_request(harness.app, "GET", path, headers=[(b"authorization", b"Bearer nope")])
    assert_raw_error(bad, 401)
    assert bad.headers["www-authenticate"].startswith("Bearer")
    assert (bad.status, bad.body) == (wrong.status, wrong.body)
    assert {k: v for k, v in bad.headers.items() if k != "location"} == {
        k: v for k, v in wrong.headers.items() if k != "location"
    }


def _routes(users: dict[str, dict[str, Any]]) -> list[tuple[str, str, bytes]]:
    """(method, path, body) on every SCIM endpoint: both sources, reads and writes, and the
    admin view (whose token the caller sends)."""
    alice = users["alice"]["id"]
    user = json.dumps({"schemas": [USER], "userName": "mallory"}).encode()
    change = json.dumps(patch_body({"op": "replace", "path": "displayName", "value": "x"}))
    return [
        ("GET", f"/scim/v2/sources/{SCIM_SOURCE}/ServiceProviderConfig", b""),
        ("GET", f"/scim/v2/sources/{SCIM_SOURCE}/Users", b""),
        ("GET", f"/scim/v2/sources/{SCIM_SOURCE}/Users/{alice}", b""),
        ("POST", f"/scim/v2/sources/{SCIM_SOURCE}/Users", user),
        ("PUT", f"/scim/v2/sources/{SCIM_SOURCE}/Users/{alice}", user),
        ("PATCH", f"/scim/v2/sources/{SCIM_SOURCE}/Users/{alice}", change.encode()),
        ("DELETE", f"/scim/v2/sources/{SCIM_SOURCE}/Users/{alice}", b""),
        ("POST", f"/scim/v2/sources/{SCIM_SOURCE}/Groups", b'{"schemas": ["%s"]}' % GROUP.encode()),
        ("POST", f"/scim/v2/sources/{ENTRA_SOURCE}/Users", user),
        ("GET", f"/scim/v2/sources/{ENTRA_SOURCE}/Schemas", b""),
        ("GET", "/scim/v2/Users", b""),
        ("GET", "/scim/v2/ServiceProviderConfig", b""),
        ("POST", "/scim/v2/Users/.search", b'{"schemas": ["%s"]}' % SEARCH.encode()),
    ]


def _token_for(path: str) -> list[tuple[bytes, bytes]]:
    if path.startswith(f"/scim/v2/sources/{ENTRA_SOURCE}/"):
        return [(b"authorization", f"Bearer {ENTRA_TOKEN}".encode())]
    return SCIM_AUTH if path.startswith("/scim/v2/sources/") else ADMIN_AUTH


@pytest.mark.parametrize("value", NOT_TEXT, ids=NOT_TEXT_IDS)
@pytest.mark.parametrize(
    "name", [b"user-agent", b"host", b"content-type", b"if-match", b"accept", b"x-trace"]
)
@ONE_STORE
def test_header_that_is_not_text_is_400_everywhere(seeded: Any, name: bytes, value: bytes) -> None:
    harness, users = seeded
    before = snapshot(harness)
    for method, path, body in _routes(users):
        headers = [*_token_for(path), *JSON_BODY]
        headers = [(n, v) for n, v in headers if n != name] + [(name, value)]
        response = raw_request(harness.app, method, path, headers=headers, body=body)
        assert_raw_error(response, 400)
        assert (
            response.json()["detail"] == f"the {name.decode()} header is not text (RFC 9110 §5.5)"
        )
    unchanged(harness, before)


def test_header_name_that_is_not_a_token_is_400(seeded: Any) -> None:
    harness, _ = seeded
    for name in (b"caf\xe9", b"x y", b"a:b", b""):
        response = raw_request(
            harness.app, "GET", "/scim/v2/sources/scim/Users", headers=[*SCIM_AUTH, (name, b"1")]
        )
        assert_raw_error(response, 400)


@pytest.mark.parametrize("value", NOT_TEXT, ids=NOT_TEXT_IDS)
@ONE_STORE
def test_authorization_that_is_not_text_is_the_wrong_token_answer_everywhere(
    seeded: Any, value: bytes
) -> None:
    harness, users = seeded
    before = snapshot(harness)
    for method, path, body in _routes(users):
        answers = [
            raw_request(
                harness.app,
                method,
                path,
                headers=[(b"authorization", token), *JSON_BODY],
                body=body,
            )
            for token in (b"Bearer " + value, b"Bearer wrong", value)
        ]
        bad, wrong, bare = answers
        assert (bad.status, bad.body) == (wrong.status, wrong.body) == (bare.status, bare.body)
        assert bad.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")
        if path.endswith("/ServiceProviderConfig"):
            assert bad.status == 200  # RFC 7643 §5: served without authentication
        else:
            assert_raw_error(bad, 401)
            assert bad.headers["www-authenticate"].startswith("Bearer")
    unchanged(harness, before)


def test_a_token_one_byte_off_utf8_is_refused(harness: Harness) -> None:
    # The token the source holds, with a byte that breaks its UTF-8: no token, not a near one.
    token = SCIM_TOKEN.encode() + b"\xe9"
    response = raw_request(
        harness.app,
        "GET",
        f"/scim/v2/sources/{SCIM_SOURCE}/Users",
        headers=[(b"authorization", b"Bearer " + token)],
    )
    assert_raw_error(response, 401)


def test_log_names_the_header_never_its_bytes(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = f"/scim/v2/sources/{SCIM_SOURCE}/Users"
    secret = "s3cr3t-agent-value"
    raw_request(
        harness.app,
        "GET",
        path,
        headers=[(b"authorization", f"Bearer {SCIM_TOKEN}\xe9".encode("latin-1"))],
    )
    raw_request(
        harness.app, "GET", path, headers=[*SCIM_AUTH, (b"user-agent", secret.encode() + b"\xff")]
    )
    logged = caplog.text
    assert "authorization header is not text" in logged
    assert "user-agent header is not text" in logged
    for hidden in (SCIM_TOKEN, SCIM_TOKEN[:12], secret, "\\xe9", "\\xff", "é", "ÿ"):
        assert hidden not in logged, hidden


@pytest.mark.parametrize(
    ("query", "scim_type"),
    [
        (b'filter=userName+eq+"caf\xe9"', "invalidFilter"),
        (b"filter=userName+eq+%22caf%E9%22", "invalidFilter"),
        (b"sortBy=\xe9", "invalidValue"),
        (b"attributes=user%FFName", "invalidValue"),
        (b"startIndex=1&count=\xff", "invalidValue"),
        (b"\xe9=1", "invalidValue"),
    ],
    ids=["raw-filter", "percent-filter", "sort-by", "attributes", "count", "name"],
)
@ONE_STORE
def test_query_that_is_not_utf8_is_400(seeded: Any, query: bytes, scim_type: str) -> None:
    # Not read as U+FFFD: that would search for a value the client never sent.
    harness, _ = seeded
    for path, auth in (
        (f"/scim/v2/sources/{SCIM_SOURCE}/Users", SCIM_AUTH),
        (
            f"/scim/v2/sources/{ENTRA_SOURCE}/Users",
            [(b"authorization", f"Bearer {ENTRA_TOKEN}".encode())],
        ),
        ("/scim/v2/Users", ADMIN_AUTH),
    ):
        response = raw_request(harness.app, "GET", path, headers=auth, query=query)
        assert_raw_error(response, 400, scim_type)


def test_latin1_in_a_path_is_404(seeded: Any) -> None:
    harness, _ = seeded
    for path in (
        "/scim/v2/sources/scim/Users/caf\xe9",
        "/scim/v2/sources/sc\xefm/Users",
        "/scim/v2/Users/\xff",
    ):
        auth = SCIM_AUTH if "sources" in path else ADMIN_AUTH
        assert_raw_error(raw_request(harness.app, "GET", path, headers=auth), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/healthz/",  # Starlette redirects to /healthz, building a URL of the query
        "/readyz",
        "/metrics",
        "/admin/users",
        "/admin/users/",
        "/admin/users/caf\xe9",
        "/admin/nothing",
        "/caf\xe9",
        "/scim/v2/sources/nosuch/Users",
        "/scim/v2/sources/scim/Users/\n",  # a decoded line break: no mount matches it
    ],
)
@pytest.mark.parametrize("value", [b"caf\xe9", b"\xff\xfe"], ids=["latin-1", "bom-16"])
@ONE_STORE
def test_admin_api_and_health_never_500_on_bytes_that_are_not_text(
    harness: Harness, path: str, value: bytes
) -> None:
    for headers, query in (
        ([*ADMIN_AUTH, (b"user-agent", value), (b"accept", value)], b"source=scim"),
        ([(b"authorization", b"Bearer " + value)], b"source=scim"),
        ([(b"host", value), *ADMIN_AUTH], b"source=sc" + value),
    ):
        response = raw_request(harness.app, "GET", path, headers=headers, query=query)
        assert 200 <= response.status < 500, (path, headers, response.body[:500])


# -- control characters (issue 22, item 2): the same answers on SQLite and PostgreSQL ---------

#: Every control character but NUL: data, kept and returned as sent (RFC 7643 §2.3.1).
CONTROLS = "".join(chr(c) for c in range(1, 0x20)) + "\x7f"


def _nul_bodies(users: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, the attribute the error names) with a NUL in one string value."""
    alice, staff = users["alice"]["id"], users["staff"]["id"]
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    nul = "a\x00b"
    user = {"schemas": [USER], "userName": "mallory"}
    return [
        ("POST", "/Users", {**user, "userName": nul}, "userName"),
        ("POST", "/Users", {**user, "displayName": nul}, "displayName"),
        ("POST", "/Users", {**user, "title": nul}, "title"),
        ("POST", "/Users", {**user, "name": {"givenName": nul}}, "name.givenName"),
        ("POST", "/Users", {**user, "emails": [{"value": nul}]}, "emails.value"),
        ("POST", "/Users", {**user, "password": nul}, "password"),
        (
            "POST",
            "/Users",
            {**user, "schemas": [USER, enterprise], enterprise: {"department": nul}},
            f"{enterprise}.department",
        ),
        ("PUT", f"/Users/{alice}", {**user, "userName": "alice", "nickName": nul}, "nickName"),
        (
            "PATCH",
            f"/Users/{alice}",
            patch_body({"op": "replace", "path": "displayName", "value": nul}),
            "displayName",
        ),
        (
            "PATCH",
            f"/Users/{alice}",
            patch_body({"op": "add", "path": "emails", "value": [{"value": nul}]}),
            "emails.value",
        ),
        ("POST", "/Groups", {"schemas": [GROUP], "displayName": nul}, "displayName"),
        (
            "POST",
            "/Groups",
            {"schemas": [GROUP], "displayName": "g", "externalId": nul},
            "externalId",
        ),
        (
            "POST",
            "/Groups",
            {"schemas": [GROUP], "displayName": "g", "members": [{"value": nul}]},
            "members.value",
        ),
        ("PUT", f"/Groups/{staff}", {"schemas": [GROUP], "displayName": nul}, "displayName"),
        (
            "PATCH",
            f"/Groups/{staff}",
            patch_body({"op": "replace", "path": "displayName", "value": nul}),
            "displayName",
        ),
    ]


def test_nul_in_a_body_is_400_invalid_value_naming_the_attribute(seeded: Any) -> None:
    harness, users = seeded
    before = snapshot(harness)
    for method, path, body, attribute in _nul_bodies(users):
        response = harness.scim.request(method, path, json=body)
        assert_error(response, 400, "invalidValue")
        detail = response.json()["detail"]
        assert detail.startswith(f"{attribute}:"), (path, body, detail)
        assert "a\\u0000b" not in response.text and "\x00" not in detail
    unchanged(harness, before)


def test_nul_in_an_entra_body_is_400_invalid_value(seeded: Any) -> None:
    harness, users = seeded
    eve = users["eve"]["id"]
    group = harness.entra.post("/Groups", json={"schemas": [GROUP], "displayName": "entra-g"})
    assert group.status_code == 201, group.text
    before = snapshot(harness)
    nul = "a\x00b"
    for method, path, body, attribute in [
        ("POST", "/Users", {"schemas": [USER], "userName": nul}, "userName"),
        ("POST", "/Users", {"schemas": [USER], "userName": "m", "displayName": nul}, "displayName"),
        ("PUT", f"/Users/{eve}", {"schemas": [USER], "userName": "eve", "title": nul}, "title"),
        # Entra's own dialect: a PATCH `value` object with the attribute as its key.
        (
            "PATCH",
            f"/Users/{eve}",
            patch_body({"op": "Replace", "value": {"displayName": nul}}),
            "displayName",
        ),
        ("POST", "/Groups", {"schemas": [GROUP], "displayName": nul}, "displayName"),
        (
            "PATCH",
            f"/Groups/{group.json()['id']}",
            patch_body({"op": "Replace", "path": "displayName", "value": nul}),
            "displayName",
        ),
    ]:
        response = harness.entra.request(method, path, json=body)
        assert_error(response, 400, "invalidValue")
        assert response.json()["detail"].startswith(f"{attribute}:"), response.text
    unchanged(harness, before)


def test_other_control_characters_are_kept_as_sent(harness: Harness) -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    sent = {
        "schemas": [USER, enterprise],
        "userName": f"ctl{CONTROLS}",
        "displayName": CONTROLS,
        "title": CONTROLS,
        "name": {"givenName": CONTROLS, "familyName": f"x{CONTROLS}y"},
        "emails": [{"value": f"a{CONTROLS}@example.org", "type": "work"}],
        enterprise: {"department": CONTROLS},
    }
    for client in (harness.scim, harness.entra):
        created = client.post("/Users", json=sent)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        patched = client.patch(
            f"/Users/{user_id}",
            json=patch_body({"op": "replace", "path": "nickName", "value": CONTROLS}),
        )
        assert patched.status_code == 200, patched.text
        got = client.get(f"/Users/{user_id}").json()
        for key, value in sent.items():
            if key != "schemas":
                assert got[key] == value, key
        assert got["nickName"] == CONTROLS
        # Through the stored JSON document (jsonb on PostgreSQL, JSON text on SQLite).
        with harness.runtime.store.reading() as session:
            document = session.scalar(select(User.scim_document).where(User.id == user_id))
        assert document is not None
        assert (document["title"], document["nickName"]) == (CONTROLS, CONTROLS)
        assert document[enterprise]["department"] == CONTROLS
        escaped = json.dumps(f"ctl{CONTROLS}")
        assert found(client.get("/Users", params={"filter": f"userName eq {escaped}"})) == {
            f"ctl{CONTROLS}"
        }
    group = harness.scim.post("/Groups", json={"schemas": [GROUP], "displayName": CONTROLS})
    assert group.status_code == 201, group.text
    assert harness.scim.get(f"/Groups/{group.json()['id']}").json()["displayName"] == CONTROLS


NUL_FILTERS = [
    'userName eq "a\\u0000"',
    'userName eq "alice\\u0000"',
    'userName sw "al\\u0000"',
    'userName co "\\u0000"',
    'userName ew "\\u0000ce"',
    'displayName eq "Alice\\u0000"',
    'displayName co "\\u0000"',
    'externalId eq "\\u0000"',
    'title sw "\\u0000"',
    'emails[value co "\\u0000"]',
    'emails.value eq "alice@example.org\\u0000"',
    'userName eq "alice" and displayName co "\\u0000"',
]


@pytest.mark.parametrize("scim_filter", NUL_FILTERS)
def test_nul_in_a_filter_value_matches_nothing(seeded: Any, scim_filter: str) -> None:
    # No stored string holds NUL (PostgreSQL's text cannot): nothing matches, on both stores.
    harness, _ = seeded
    assert found(harness.scim.get("/Users", params={"filter": scim_filter})) == set()
    search = {"schemas": [SEARCH], "filter": scim_filter}
    assert found(harness.scim.post("/Users/.search", json=search)) == set()
    assert found(harness.admin.get("/Users", params={"filter": scim_filter})) == set()


@pytest.mark.parametrize(
    ("scim_filter", "intended"),
    [
        ('userName gt "a\\u0000"', {"alice", "bob", "carol"}),
        ('userName gt "alice\\u0000"', {"bob", "carol"}),
        ('userName ge "\\u0000"', {"alice", "bob", "carol"}),
        ('userName lt "bob\\u0000x"', {"alice", "bob"}),
        ('userName le "\\u0000"', set()),
        ('userName le "bob\\u0000"', {"alice", "bob"}),
    ],
)
def test_nul_in_an_ordering_compares_in_code_point_order(
    seeded: Any, scim_filter: str, intended: set[str]
) -> None:
    # store.search: an ordering compares as if the value ended before its NUL, which in code
    # point order is exact for every stored value (none holds NUL); the same on both stores.
    harness, _ = seeded
    assert found(harness.scim.get("/Users", params={"filter": scim_filter})) == intended


@pytest.mark.parametrize(
    "scim_filter", ['not (userName eq "a\\u0000")', 'not (displayName co "\\u0000")']
)
def test_not_of_a_nul_comparison_matches_everything(seeded: Any, scim_filter: str) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"filter": scim_filter})
    assert found(response) == {"alice", "bob", "carol"}


def test_nul_in_a_group_filter_matches_nothing(seeded: Any) -> None:
    harness, _ = seeded
    for scim_filter in ('displayName eq "staff\\u0000"', 'displayName co "\\u0000"'):
        response = harness.scim.get("/Groups", params={"filter": scim_filter})
        assert response.status_code == 200, response.text
        assert response.json()["totalResults"] == 0


@pytest.mark.parametrize(
    "scim_filter",
    [
        'userName\teq "alice"',
        'userName eq\n"alice"',
        'userName eq "alice"\r\n',
        '\x0buserName eq "alice"',
        'userName eq "alice"\x00',
        'userName\x01eq "alice"',
        'userName eq "alice" and\x1fdisplayName pr',
        'userName eq "alice"\x7f',
        # Inside the quotes: a JSON string escapes them (RFC 8259 §7).
        'userName eq "al\x00ice"',
        'userName eq "al\tice"',
        'userName eq "al\nice"',
    ],
)
def test_raw_control_character_in_a_filter_is_400_invalid_filter(
    seeded: Any, scim_filter: str
) -> None:
    harness, _ = seeded
    response = harness.scim.get("/Users", params={"filter": scim_filter})
    assert_error(response, 400, "invalidFilter")
    search = harness.scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": scim_filter})
    assert_error(search, 400, "invalidFilter")


def test_raw_del_inside_a_quoted_value_is_data(seeded: Any) -> None:
    # U+007F is a character a JSON string may hold raw: a value, which nothing stored holds.
    harness, _ = seeded
    assert found(harness.scim.get("/Users", params={"filter": 'userName eq "ali\x7fce"'})) == set()


@pytest.mark.parametrize("character", ["%00", "%01", "%09", "%0a", "%0d", "%1f", "%7f"])
@ONE_STORE
def test_control_character_in_the_path_is_404(seeded: Any, character: str) -> None:
    harness, users = seeded
    before = snapshot(harness)
    alice = users["alice"]["id"]
    for client, path in (
        (harness.scim, f"/Users/{character}"),
        (harness.scim, f"/Users/{alice}{character}"),
        (harness.scim, f"/Groups/{character}"),
        (harness.entra, f"/Users/x{character}"),
        (harness.admin, f"/Users/{character}"),
    ):
        for method in ("GET", "DELETE", "PUT", "PATCH"):
            body = {"schemas": [USER], "userName": "x"} if method == "PUT" else None
            if method == "PATCH":
                body = patch_body({"op": "replace", "path": "displayName", "value": "x"})
            response = client.request(method, path, json=body)
            assert response.status_code in (404, 405), (method, path, response.text)
            assert_error(response, response.status_code)
    unchanged(harness, before)


@pytest.mark.parametrize("character", ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f"])
@pytest.mark.parametrize(
    "parameter", ["attributes", "excludedAttributes", "sortBy", "sortOrder", "startIndex", "count"]
)
@ONE_STORE
def test_control_character_in_a_query_parameter_is_a_scim_error(
    seeded: Any, parameter: str, character: str
) -> None:
    harness, users = seeded
    value = {"startIndex": "1", "count": "2", "sortOrder": "ascending"}.get(parameter, "userName")
    for client, path in (
        (harness.scim, "/Users"),
        (harness.scim, f"/Users/{users['alice']['id']}"),
        (harness.scim, "/Groups"),
        (harness.admin, "/Users"),
    ):
        for sent in (character, value + character, character + value):
            response = client.get(path, params={parameter: sent})
            if response.status_code != 200:  # e.g. "userName\t" read as "userName" is fine
                assert_error(response, 400, "invalidValue", "invalidPath", "invalidFilter")
