"""The Entra ID replay suite (issue 5): Microsoft's published requests, sent in the order Entra
sends them, to the `entra` source, and where they are not RFC-valid, to the strict `scim` source.

The requests are files in tests/samples/entra/, each naming the check it replays and where the
shape was published:

- `tutorial-*`: "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra
  ID" (learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-
  and-groups): the request/response examples and the worked examples 1-6.
- `compat-*`: "Known issues and resolutions with SCIM 2.0 protocol compliance"
  (.../application-provisioning-config-problem-scim-compatibility): what Entra sends without and
  with the `aadOptscim062020` flag ("False" vs false, "Remove" + value list vs
  members[value eq "..."], one op per attribute vs a path-less replace with dotted keys).
- `validator-*`: the 31 checks of Microsoft's SCIM validator (scimvalidator.microsoft.com),
  with the request bodies it was captured sending (github.com/pranems/SCIMServer,
  docs/SCIM_VALIDATION_GAP_ANALYSIS.md and docs/MANAGER_PATCH_STRING_COERCION.md).

Ids known only at run time are "{{name}}" placeholders that `replay` fills in. Every test
asserts values, and the state afterwards (a GET, a filter, or the admin view).
"""

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.engine.types import Role
from gateway.users.service import Actor
from tests.scim.harness import ENTRA_SOURCE, SCIM_MEDIA_TYPE

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "entra"

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GATEWAY = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"

# Values the validator's create body is filled with (validator-create-user.json).
VALIDATOR_ENTERPRISE = {
    "employeeNumber": "EMPQXWZRTLKA",
    "department": "DEPMNBVCXZLK",
    "costCenter": "CCXPLMQWZRTA",
    "organization": "ORGZXCVBNMQW",
    "division": "DIVLKJHGFDSA",
}
# The validator sends random strings as the manager and the profileUrl of the user it creates.
VALIDATOR_RANDOM_MANAGER = "MGRQZXWVUTSA"
VALIDATOR_RANDOM_PROFILE_URL = "PROFQWERTYUI"


# ---------------------------------------------------------------------------- replay machinery


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in values.items():
            value = value.replace("{{" + key + "}}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


def request_of(name: str, **values: str) -> dict[str, Any]:
    """The request of sample `name` with its placeholders filled in."""
    request = _fill(json.loads((SAMPLES / f"{name}.json").read_text())["request"], values)
    left = re.findall(r"\{\{(\w+)\}\}", json.dumps(request))
    assert not left, f"{name}: no value given for {left}"
    return request


def send(client, request: dict[str, Any]):
    headers = {}
    content = None
    if "body" in request:
        content = json.dumps(request["body"])
        headers["Content-Type"] = SCIM_MEDIA_TYPE  # what Entra sends
    return client.request(
        request["method"],
        request["path"],
        params=request.get("query"),
        content=content,
        headers=headers,
    )


def replay(client, name: str, **values: str):
    return send(client, request_of(name, **values))


def lowercase_ops(request: dict[str, Any]) -> dict[str, Any]:
    """The same request with RFC-cased ops, to isolate the other quirk it carries."""
    body = dict(request["body"])
    body["Operations"] = [{**op, "op": op["op"].lower()} for op in body["Operations"]]
    return {**request, "body": body}


def scim(response, status: int) -> Any:
    """The body of a SCIM response with `status` (None for 204)."""
    assert response.status_code == status, response.text
    if status == 204:
        assert response.content == b""
        return None
    assert response.headers["content-type"].startswith(SCIM_MEDIA_TYPE)
    return response.json()


def scim_error(response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    body = scim(response, status)
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body["scimType"] == scim_type
    assert "Traceback" not in response.text
    return body


def listed(response, total: int) -> list[dict[str, Any]]:
    body = scim(response, 200)
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == total
    resources = body.get("Resources", [])
    assert len(resources) == total
    if total:
        assert body["startIndex"] == 1
        assert body["itemsPerPage"] == total
    return resources


def member_ids(group: dict[str, Any]) -> list[str]:
    return sorted(member["value"] for member in group.get("members", []))


# ---------------------------------------------------------------------------- setup helpers


def tutorial_user(client, tag: str, **values: str) -> dict[str, Any]:
    """A user created with the tutorial's Create User request."""
    fill = {
        "user_name": f"Test_User_{tag}",
        "external_id": str(uuid.uuid4()),
        "work_email": f"{tag}@contoso.example",
        **values,
    }
    return scim(replay(client, "tutorial-create-user", **fill), 201)


def validator_user(client, tag: str = "orla", **values: str) -> dict[str, Any]:
    """A user created with the validator's Create a new User request."""
    fill = {
        "user_name": f"{tag}.quinby@contoso.example",
        "work_email": f"{tag}.work@contoso.example",
        "external_id": str(uuid.uuid4()),
        "manager_id": VALIDATOR_RANDOM_MANAGER,
        "profile_url": f"https://profiles.contoso.example/{tag}",
        **values,
    }
    return scim(replay(client, "validator-create-user", **fill), 201)


def validator_group(client, group_name: str = "REPLAYGROUPQZ", **values: str) -> dict[str, Any]:
    fill = {"group_name": group_name, "external_id": str(uuid.uuid4()), **values}
    return scim(replay(client, "validator-create-group", **fill), 201)


def group_with_members(harness, *tags: str) -> tuple[dict[str, Any], list[str]]:
    """A group and one tutorial user per tag, all of them members."""
    group = validator_group(harness.entra)
    ids = [tutorial_user(harness.entra, tag)["id"] for tag in tags]
    # Setup with a plain RFC 7644 add, so a quirk under test never breaks the setup.
    operation = {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [operation]}
    scim(harness.entra.patch(f"/Groups/{group['id']}", json=body), 200)
    assert member_ids(get_group(harness.entra, group["id"])) == sorted(ids)
    return group, ids


def get_user(client, user_id: str) -> dict[str, Any]:
    return scim(replay(client, "tutorial-get-user", user_id=user_id), 200)


def get_group(client, group_id: str) -> dict[str, Any]:
    return scim(replay(client, "validator-get-group", group_id=group_id), 200)


def admin_resource(harness, user_name: str) -> dict[str, Any]:
    """The admin view of the entra source's user `user_name`."""
    response = harness.admin.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    body = scim(response, 200)
    mine = [r for r in body.get("Resources", []) if r[GATEWAY]["source"] == ENTRA_SOURCE]
    assert len(mine) == 1, body
    return mine[0]


def admin_state(harness, user_name: str) -> dict[str, Any]:
    return admin_resource(harness, user_name)[GATEWAY]


def assert_active_in_admin_view(harness, user_name: str) -> None:
    state = admin_state(harness, user_name)
    assert state["status"] == "active"
    assert state.get("disabledBy") is None
    assert state.get("reason") is None


def assert_disabled_by_source(harness, user_name: str) -> None:
    state = admin_state(harness, user_name)
    assert state["status"] == "disabled"
    assert state["disabledBy"] == "source"
    assert state["reason"] == "source_disabled"
    assert state.get("pendingDeletionSince") is None


def assert_filter_finds(client, user_name: str, user_id: str) -> dict[str, Any]:
    (found,) = listed(
        replay(client, "validator-filter-user", user_name=user_name),
        1,
    )
    assert found["id"] == user_id
    return found


def assert_filter_misses(client, user_name: str) -> None:
    listed(replay(client, "validator-filter-user", user_name=user_name), 0)


# ============================================================================ Test Connection


@pytest.mark.parametrize(
    "sample",
    ["tutorial-test-connection-user", "tutorial-test-connection-user-externalid"],
)
def test_test_connection_random_guid_user_is_an_empty_list_response(harness, sample):
    tutorial_user(harness.entra, "present")  # the store is not empty: the filter must filter
    listed(replay(harness.entra, sample, random_guid=str(uuid.uuid4())), 0)


def test_test_connection_random_guid_group_is_an_empty_list_response(harness):
    validator_group(harness.entra)
    listed(
        replay(harness.entra, "tutorial-test-connection-group", random_guid=str(uuid.uuid4())),
        0,
    )


# ============================================================================ tutorial: users


def test_tutorial_create_user(harness):
    response = replay(
        harness.entra,
        "tutorial-create-user",
        user_name="Test_User_ada",
        external_id="0b5e3c1d-2f4a-4e6b-9c8d-7a6b5c4d3e2f",
        work_email="ada@contoso.example",
    )
    body = scim(response, 201)
    assert CORE_USER in body["schemas"]
    assert GATEWAY not in body["schemas"]
    assert GATEWAY not in body  # gateway-owned data is never shown to a provisioning client
    assert body["id"]
    assert body["id"] != body["externalId"]
    assert body["userName"] == "Test_User_ada"
    assert body["externalId"] == "0b5e3c1d-2f4a-4e6b-9c8d-7a6b5c4d3e2f"
    assert body["active"] is True
    assert body["emails"] == [{"primary": True, "type": "work", "value": "ada@contoso.example"}]
    assert body["name"] == {"formatted": "Ada Replay", "familyName": "Replay", "givenName": "Ada"}
    assert body.get("roles", []) == []
    assert "password" not in body
    # `meta` in the create body (resourceType only) is ignored; the server writes its own.
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["created"]
    assert meta["lastModified"]
    assert meta["location"].endswith(f"/scim/v2/sources/entra/Users/{body['id']}")
    assert response.headers["location"] == meta["location"]
    assert response.headers["etag"] == meta["version"]
    assert meta["version"].startswith('W/"')


def test_tutorial_get_user(harness):
    created = tutorial_user(harness.entra, "ada")
    assert get_user(harness.entra, created["id"]) == created


def test_tutorial_get_user_not_found(harness):
    tutorial_user(harness.entra, "ada")
    response = replay(harness.entra, "tutorial-get-user-not-found", user_id=str(uuid.uuid4()))
    scim_error(response, 404)


def test_tutorial_get_user_by_query(harness):
    created = tutorial_user(harness.entra, "ada")
    tutorial_user(harness.entra, "bob")
    response = replay(harness.entra, "tutorial-get-user-by-query", user_name="Test_User_ada")
    (found,) = listed(response, 1)
    assert found == created


def test_tutorial_get_user_by_query_zero_results(harness):
    tutorial_user(harness.entra, "ada")
    listed(replay(harness.entra, "tutorial-get-user-by-query-zero-results"), 0)


def test_tutorial_update_user_multi_valued_properties(harness):
    created = tutorial_user(harness.entra, "ada")
    response = replay(harness.entra, "tutorial-update-user-multi-valued", user_id=created["id"])
    body = scim(response, 200)
    assert body["emails"] == [
        {"primary": True, "type": "work", "value": "ada.updated@contoso.example"}
    ]
    assert body["name"] == {
        "formatted": "Ada Replay",
        "familyName": "UpdatedReplay",
        "givenName": "Ada",
    }
    assert body["userName"] == "Test_User_ada"
    assert body["meta"]["version"] != created["meta"]["version"]
    assert get_user(harness.entra, created["id"]) == body
    (found,) = listed(
        replay(
            harness.entra,
            "tutorial-filter-user-by-work-email",
            work_email="ada.updated@contoso.example",
        ),
        1,
    )
    assert found["id"] == created["id"]
    listed(
        replay(
            harness.entra, "tutorial-filter-user-by-work-email", work_email="ada@contoso.example"
        ),
        0,
    )


def test_tutorial_update_user_single_valued_properties(harness):
    created = tutorial_user(harness.entra, "ada")
    response = replay(
        harness.entra,
        "tutorial-update-user-single-valued",
        user_id=created["id"],
        new_user_name="5c2e9a7f-renamed@contoso.example",
    )
    body = scim(response, 200)
    assert body["userName"] == "5c2e9a7f-renamed@contoso.example"
    assert body["externalId"] == created["externalId"]
    assert get_user(harness.entra, created["id"])["userName"] == body["userName"]
    assert_filter_finds(harness.entra, "5c2e9a7f-renamed@contoso.example", created["id"])
    assert_filter_misses(harness.entra, "Test_User_ada")


def test_tutorial_disable_user(harness):
    # "op": "Replace" (capitalised) with a boolean value.
    created = tutorial_user(harness.entra, "ada")
    body = scim(replay(harness.entra, "tutorial-disable-user", user_id=created["id"]), 200)
    assert body["active"] is False
    # A disabled user is still returned by GET and by filter, with active false.
    assert get_user(harness.entra, created["id"])["active"] is False
    assert assert_filter_finds(harness.entra, "Test_User_ada", created["id"])["active"] is False
    assert_disabled_by_source(harness, "Test_User_ada")


def test_tutorial_delete_user(harness):
    created = tutorial_user(harness.entra, "ada")
    scim(replay(harness.entra, "tutorial-delete-user", user_id=created["id"]), 204)
    scim_error(replay(harness.entra, "tutorial-get-user", user_id=created["id"]), 404)
    assert_filter_misses(harness.entra, "Test_User_ada")
    state = admin_state(harness, "Test_User_ada")
    assert state["status"] == "disabled"
    assert state["reason"] == "missing"
    assert state["pendingDeletionSince"]


# ============================================================================ tutorial: examples


def test_tutorial_example_1_query_by_external_id_unquoted(harness):
    created = tutorial_user(harness.entra, "joy", external_id="jyoung")
    tutorial_user(harness.entra, "other", external_id="jyoungster")
    response = replay(
        harness.entra, "tutorial-query-user-by-externalid-unquoted", external_id="jyoung"
    )
    (found,) = listed(response, 1)
    assert found["id"] == created["id"]
    assert found["externalId"] == "jyoung"


def test_tutorial_example_2_provision_user_with_explicit_nulls(harness):
    response = replay(
        harness.entra,
        "tutorial-provision-user-explicit-nulls",
        user_name="jyoung@contoso.example",
        external_id="jyoung",
        work_email="jyoung@Contoso.example",
    )
    body = scim(response, 201)
    assert body["userName"] == "jyoung@contoso.example"
    assert body["displayName"] == "Joan Nullable"
    assert body["emails"] == [{"type": "work", "value": "jyoung@Contoso.example", "primary": True}]
    assert body["name"] == {"familyName": "Nullable", "givenName": "Joan"}
    for attribute in ("addresses", "phoneNumbers", "preferredLanguage", "title"):
        assert body.get(attribute) in (None, []), attribute
    assert body.get(ENTERPRISE, {}).get("manager") is None
    assert get_user(harness.entra, body["id"]) == body


def test_tutorial_filter_on_work_email(harness):
    created = tutorial_user(harness.entra, "ada")
    tutorial_user(harness.entra, "bob")
    response = replay(
        harness.entra, "tutorial-filter-user-by-work-email", work_email="ada@contoso.example"
    )
    (found,) = listed(response, 1)
    assert found["id"] == created["id"]


def test_tutorial_filter_on_user_name_unquoted(harness):
    created = validator_user(harness.entra, "unquoted")
    validator_user(harness.entra, "other")
    response = replay(
        harness.entra,
        "tutorial-filter-user-unquoted-username",
        user_name="unquoted.quinby@contoso.example",
    )
    (found,) = listed(response, 1)
    assert found["id"] == created["id"]


def test_tutorial_example_5_add_manager_unqualified_path_array(harness):
    manager = tutorial_user(harness.entra, "boss")
    user = validator_user(harness.entra)
    response = replay(
        harness.entra,
        "tutorial-add-manager-unqualified-array",
        user_id=user["id"],
        manager_id=manager["id"],
        manager_ref=manager["meta"]["location"],
    )
    body = scim(response, 200)
    assert body[ENTERPRISE]["manager"]["value"] == manager["id"]
    assert body[ENTERPRISE]["department"] == VALIDATOR_ENTERPRISE["department"]
    assert "manager" not in body  # stored in the extension, not as a core attribute
    assert get_user(harness.entra, user["id"])[ENTERPRISE]["manager"]["value"] == manager["id"]


# ============================================================================ aadOptscim062020


def test_disable_user_without_flag_string_false(harness):
    created = tutorial_user(harness.entra, "ada")
    response = replay(harness.entra, "compat-disable-user-without-flag", user_id=created["id"])
    assert scim(response, 200)["active"] is False
    assert get_user(harness.entra, created["id"])["active"] is False
    assert_disabled_by_source(harness, "Test_User_ada")


def test_disable_user_with_flag_boolean_false(harness):
    created = tutorial_user(harness.entra, "ada")
    response = replay(harness.entra, "compat-disable-user-with-flag", user_id=created["id"])
    assert scim(response, 200)["active"] is False
    assert get_user(harness.entra, created["id"])["active"] is False
    assert_disabled_by_source(harness, "Test_User_ada")


@pytest.mark.parametrize(
    ("disable", "enable"),
    [
        ("compat-disable-user-without-flag", "compat-enable-user-without-flag"),
        ("compat-disable-user-with-flag", "compat-enable-user-with-flag"),
    ],
)
def test_enable_user_after_source_disable(harness, disable, enable):
    created = tutorial_user(harness.entra, "ada")
    scim(replay(harness.entra, disable, user_id=created["id"]), 200)
    assert scim(replay(harness.entra, enable, user_id=created["id"]), 200)["active"] is True
    assert get_user(harness.entra, created["id"])["active"] is True
    assert_active_in_admin_view(harness, "Test_User_ada")


@pytest.mark.parametrize(
    "enable", ["compat-enable-user-without-flag", "compat-enable-user-with-flag"]
)
def test_enable_user_never_overrides_an_admin_disable(harness, enable):
    created = tutorial_user(harness.entra, "ada")
    gateway_id = admin_resource(harness, "Test_User_ada")["id"]
    harness.runtime.user_admin.disable(Actor("ops", Role.SUPER_ADMIN), gateway_id)
    # Entra must not get an error (it would retry forever); the admin's disable stands.
    scim(replay(harness.entra, enable, user_id=created["id"]), 200)
    state = admin_state(harness, "Test_User_ada")
    assert state["status"] == "disabled"
    assert state["disabledBy"] == "admin"
    assert state["reason"] == "admin"


@pytest.mark.parametrize(
    "sample", ["compat-add-single-value-without-flag", "compat-add-single-value-with-flag"]
)
def test_add_single_value_string_attribute(harness, sample):
    created = tutorial_user(harness.entra, "ada")
    body = scim(replay(harness.entra, sample, user_id=created["id"]), 200)
    assert body["nickName"] == "Addy"
    assert body["userName"] == "Test_User_ada"
    assert get_user(harness.entra, created["id"])["nickName"] == "Addy"


def test_replace_multiple_attributes_without_flag(harness):
    user = validator_user(harness.entra)
    response = replay(harness.entra, "compat-replace-multiple-without-flag", user_id=user["id"])
    body = scim(response, 200)
    assert body["displayName"] == "Rpmx"
    assert body["emails"] == [{"type": "work", "value": "rpmx@contoso.example", "primary": True}]
    assert body["name"] == {**user["name"], "givenName": "Rgvn", "familyName": "Rfam"}
    assert body["externalId"] == "Rext"
    assert body[ENTERPRISE] == {**user[ENTERPRISE], "employeeNumber": "Remp"}
    assert get_user(harness.entra, user["id"]) == body


def test_replace_multiple_attributes_with_flag_path_less_dotted_keys(harness):
    user = validator_user(harness.entra)
    response = replay(harness.entra, "compat-replace-multiple-with-flag", user_id=user["id"])
    body = scim(response, 200)
    assert body["displayName"] == "Fdsp"
    assert body["emails"] == [{"type": "work", "value": "fmx@contoso.example", "primary": True}]
    # Dotted keys are sub-attributes, not new attributes; the other name parts stay.
    assert body["name"] == {**user["name"], "givenName": "Fgvn", "familyName": "Ffam"}
    assert "name.givenName" not in body
    # The URN-qualified key lands in the enterprise extension; its other attributes stay.
    assert body[ENTERPRISE] == {**user[ENTERPRISE], "employeeNumber": "Femp"}
    assert f"{ENTERPRISE}:employeeNumber" not in body
    assert body["externalId"] == user["externalId"]
    assert get_user(harness.entra, user["id"]) == body


def test_remove_member_without_flag_removes_only_the_listed_member(harness):
    group, (ada, bob, cyd) = group_with_members(harness, "ada", "bob", "cyd")
    response = replay(
        harness.entra, "compat-remove-member-without-flag", group_id=group["id"], member_id=bob
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == sorted([ada, cyd])


def test_remove_members_without_flag_value_list_removes_only_those_listed(harness):
    group, (ada, bob, cyd) = group_with_members(harness, "ada", "bob", "cyd")
    response = replay(
        harness.entra,
        "compat-remove-members-without-flag-list",
        group_id=group["id"],
        member_id=ada,
        other_member_id=cyd,
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == [bob]


def test_remove_member_with_flag_value_filter(harness):
    group, (ada, bob, cyd) = group_with_members(harness, "ada", "bob", "cyd")
    response = replay(
        harness.entra, "compat-remove-member-with-flag", group_id=group["id"], member_id=cyd
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == sorted([ada, bob])


# ============================================================================ validator: users


def test_validator_create_a_new_user(harness):
    created = validator_user(
        harness.entra,
        external_id="9f0c2b8e-1d3a-4c5e-8f7a-6b5c4d3e2f1a",
        profile_url=VALIDATOR_RANDOM_PROFILE_URL,  # a random string, as the validator sends it
    )
    assert sorted(created["schemas"]) == sorted([CORE_USER, ENTERPRISE])
    assert GATEWAY not in created
    # The validator's verification request: a filter on userName.
    (found,) = listed(
        replay(harness.entra, "validator-filter-user", user_name="orla.quinby@contoso.example"),
        1,
    )
    assert found == created
    assert found["userName"] == "orla.quinby@contoso.example"
    assert found["externalId"] == "9f0c2b8e-1d3a-4c5e-8f7a-6b5c4d3e2f1a"
    assert found["active"] is True
    assert found["displayName"] == "QZRTPLMVKSDA"
    assert found["title"] == "WPLXNCVBHQRT"
    assert found["preferredLanguage"] == "hi"
    assert found["userType"] == "UTYPEQWERTZA"
    assert found["nickName"] == "NICKZXCVBNMA"
    assert found["locale"] == "en-US"
    assert found["timezone"] == "Europe/Oslo"
    assert found["profileUrl"] == VALIDATOR_RANDOM_PROFILE_URL
    assert found["emails"] == [
        {"type": "work", "value": "orla.work@contoso.example", "primary": True}
    ]
    assert found["name"] == {
        "givenName": "Orla",
        "familyName": "Quinby",
        "formatted": "Tamsin",
        "middleName": "Ivo",
        "honorificPrefix": "Dr",
        "honorificSuffix": "III",
    }
    assert found["phoneNumbers"] == [
        {"type": "work", "value": "31-555-0101", "primary": True},
        {"type": "mobile", "value": "31-555-0102"},
        {"type": "fax", "value": "31-555-0103"},
    ]
    assert found["addresses"] == [
        {
            "type": "work",
            "formatted": "KQPZMWNXLRTA",
            "streetAddress": "4411 Hollow Crossing",
            "locality": "VMBQXRTLPZWA",
            "region": "JDKSLQPWMZNX",
            "postalCode": "ab12 3cd",
            "primary": True,
            "country": "Norway",
        }
    ]
    enterprise = found[ENTERPRISE]
    assert {k: enterprise[k] for k in VALIDATOR_ENTERPRISE} == VALIDATOR_ENTERPRISE
    assert enterprise["manager"]["value"] == VALIDATOR_RANDOM_MANAGER


def test_validator_create_user_roles_primary_string_is_returned_as_boolean(harness):
    # roles[].primary arrives as the string "True"; the validator fails a boolean read of it.
    created = validator_user(harness.entra)
    expected = [
        {
            "primary": True,
            "display": "ROLEDISPLAYQZ",
            "value": "ROLEVALUEWXY",
            "type": "ROLETYPEPLM",
        }
    ]
    assert created["roles"] == expected
    assert get_user(harness.entra, created["id"])["roles"] == expected


@pytest.mark.parametrize(
    "duplicate", ["orla.quinby@contoso.example", "ORLA.Quinby@Contoso.Example"]
)
def test_validator_create_a_duplicate_user(harness, duplicate):
    created = validator_user(harness.entra)
    response = replay(
        harness.entra,
        "validator-create-user",
        user_name=duplicate,
        work_email="dup@contoso.example",
        external_id=str(uuid.uuid4()),
        manager_id=VALIDATOR_RANDOM_MANAGER,
        profile_url="https://profiles.contoso.example/x",
    )
    scim_error(response, 409, "uniqueness")
    (only,) = listed(harness.entra.get("/Users"), 1)
    assert only == created


def test_validator_filter_for_an_existing_user(harness):
    created = validator_user(harness.entra)
    validator_user(harness.entra, "other")
    assert assert_filter_finds(harness.entra, "orla.quinby@contoso.example", created["id"]) == (
        created
    )


def test_validator_filter_for_a_non_existing_user(harness):
    validator_user(harness.entra)
    assert_filter_misses(harness.entra, "nobody.quinby@contoso.example")


def test_validator_filter_for_an_existing_user_with_a_different_case(harness):
    created = validator_user(harness.entra)
    found = assert_filter_finds(harness.entra, "ORLA.QUINBY@CONTOSO.EXAMPLE", created["id"])
    assert found["userName"] == "orla.quinby@contoso.example"  # stored as sent


def test_validator_patch_user_replace_attributes_verbose(harness):
    user = validator_user(harness.entra)
    new_external_id = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
    response = replay(
        harness.entra,
        "validator-patch-user-replace-attributes-verbose",
        user_id=user["id"],
        external_id=new_external_id,
        profile_url="https://profiles.contoso.example/verbose",
    )
    body = scim(response, 200)
    assert body["displayName"] == "VDSPNEWQZXWA"
    assert body["title"] == "VTTLNEWPLMQA"
    assert body["preferredLanguage"] == "fr-FR"
    assert body["nickName"] == "VNCKNEWZXCVA"
    assert body["userType"] == "VUTPNEWQWERA"
    assert body["locale"] == "fr-CA"
    assert body["timezone"] == "America/Toronto"
    assert body["profileUrl"] == "https://profiles.contoso.example/verbose"
    assert body["externalId"] == new_external_id
    assert body["name"] == {
        "givenName": "Vgiven",
        "familyName": "Vfamily",
        "formatted": "Vformatted",
        "middleName": "Vmiddle",
        "honorificPrefix": "Prof",
        "honorificSuffix": "Jr",
    }
    assert body["emails"] == [
        {"type": "work", "value": "verbose.new@contoso.example", "primary": True}
    ]
    assert body["phoneNumbers"] == [
        {"type": "work", "value": "47-555-0201", "primary": True},
        {"type": "mobile", "value": "47-555-0202"},
        {"type": "fax", "value": "47-555-0203"},
    ]
    assert body["addresses"] == [
        {
            "type": "work",
            "formatted": "VFMTNEWQWERA",
            "streetAddress": "12 New Quay",
            "locality": "VLOCNEWQWERA",
            "region": "VREGNEWQWERA",
            "postalCode": "zz9 9zz",
            "primary": True,
            "country": "Iceland",
        }
    ]
    assert body[ENTERPRISE] == {
        "employeeNumber": "VEMPNEWQWERA",
        "department": "VDEPNEWQWERA",
        "costCenter": "VCCNEWQWERTA",
        "organization": "VORGNEWQWERA",
        "division": "VDIVNEWQWERA",
        "manager": user[ENTERPRISE]["manager"],
    }
    assert body["userName"] == user["userName"]
    assert body["active"] is True
    assert get_user(harness.entra, user["id"]) == body


def test_validator_update_user_username(harness):
    # Path-less replace: {"op": "replace", "value": {"userName": ...}}.
    user = validator_user(harness.entra)
    response = replay(
        harness.entra,
        "validator-update-user-username",
        user_id=user["id"],
        new_user_name="emil.renamed@contoso.example",
    )
    body = scim(response, 200)
    assert body["userName"] == "emil.renamed@contoso.example"
    assert body["displayName"] == user["displayName"]
    assert get_user(harness.entra, user["id"])["userName"] == "emil.renamed@contoso.example"
    assert_filter_finds(harness.entra, "emil.renamed@contoso.example", user["id"])
    assert_filter_misses(harness.entra, "orla.quinby@contoso.example")


def test_validator_patch_user_disable_user(harness):
    user = validator_user(harness.entra)
    body = scim(replay(harness.entra, "validator-disable-user", user_id=user["id"]), 200)
    assert body["active"] is False
    # The validator checks both a GET and a filter after the disable.
    assert get_user(harness.entra, user["id"])["active"] is False
    found = assert_filter_finds(harness.entra, "orla.quinby@contoso.example", user["id"])
    assert found["active"] is False
    assert_disabled_by_source(harness, "orla.quinby@contoso.example")


@pytest.mark.parametrize("sample", ["validator-add-manager", "validator-add-manager-raw-string"])
def test_validator_patch_user_add_manager(harness, sample):
    manager = tutorial_user(harness.entra, "boss")
    user = validator_user(harness.entra)
    response = replay(harness.entra, sample, user_id=user["id"], manager_id=manager["id"])
    body = scim(response, 200)
    assert body[ENTERPRISE]["manager"]["value"] == manager["id"]
    assert {k: body[ENTERPRISE][k] for k in VALIDATOR_ENTERPRISE} == VALIDATOR_ENTERPRISE
    assert f"{ENTERPRISE}:manager" not in body
    assert get_user(harness.entra, user["id"])[ENTERPRISE]["manager"]["value"] == manager["id"]


@pytest.mark.parametrize(
    "sample", ["validator-replace-manager", "validator-replace-manager-raw-string"]
)
def test_validator_patch_user_replace_manager(harness, sample):
    first = tutorial_user(harness.entra, "boss")
    second = tutorial_user(harness.entra, "newboss")
    user = validator_user(harness.entra, manager_id=first["id"])
    assert user[ENTERPRISE]["manager"]["value"] == first["id"]
    response = replay(harness.entra, sample, user_id=user["id"], manager_id=second["id"])
    body = scim(response, 200)
    assert body[ENTERPRISE]["manager"]["value"] == second["id"]
    assert get_user(harness.entra, user["id"])[ENTERPRISE]["manager"]["value"] == second["id"]


@pytest.mark.parametrize(
    "sample",
    [
        "validator-remove-manager-empty-value",
        "validator-remove-manager-empty-string",
        "validator-remove-manager-op",
    ],
)
def test_validator_patch_user_remove_manager(harness, sample):
    boss = tutorial_user(harness.entra, "boss")
    user = validator_user(harness.entra, manager_id=boss["id"])
    body = scim(replay(harness.entra, sample, user_id=user["id"]), 200)
    # Removed, not kept as a manager with an empty id; the rest of the extension stays.
    assert body[ENTERPRISE].get("manager") is None
    assert {k: body[ENTERPRISE][k] for k in VALIDATOR_ENTERPRISE} == VALIDATOR_ENTERPRISE
    assert get_user(harness.entra, user["id"]) == body


def test_validator_delete_a_user(harness):
    user = validator_user(harness.entra)
    scim(replay(harness.entra, "validator-delete-user", user_id=user["id"]), 204)
    scim_error(replay(harness.entra, "validator-get-user", user_id=user["id"]), 404)
    assert_filter_misses(harness.entra, "orla.quinby@contoso.example")


def test_validator_patch_user_multiple_ops_on_different_attributes(harness):
    user = validator_user(harness.entra)
    response = replay(
        harness.entra,
        "validator-patch-user-multiple-ops-different-attributes",
        user_id=user["id"],
        external_id="multi-ops-external-id",
    )
    body = scim(response, 200)
    assert body.get("preferredLanguage") is None
    assert body["externalId"] == "multi-ops-external-id"
    assert body["displayName"] == "MULTIOPSNEWDN"
    assert body["title"] == user["title"]
    assert get_user(harness.entra, user["id"]) == body


def test_validator_patch_user_multiple_ops_on_same_attribute(harness):
    # remove, add, replace of externalId in one PATCH: applied in order, the last one wins.
    user = validator_user(harness.entra)
    response = replay(
        harness.entra,
        "validator-patch-user-multiple-ops-same-attribute",
        user_id=user["id"],
        external_id="added-external-id",
        new_external_id="replaced-external-id",
    )
    assert scim(response, 200)["externalId"] == "replaced-external-id"
    assert get_user(harness.entra, user["id"])["externalId"] == "replaced-external-id"


def test_validator_delete_a_non_existent_user(harness):
    validator_user(harness.entra)
    response = replay(harness.entra, "validator-delete-user", user_id=str(uuid.uuid4()))
    scim_error(response, 404)
    assert len(listed(harness.entra.get("/Users"), 1)) == 1


def test_validator_delete_the_same_user_twice(harness):
    user = validator_user(harness.entra)
    scim(replay(harness.entra, "validator-delete-user", user_id=user["id"]), 204)
    scim_error(replay(harness.entra, "validator-delete-user", user_id=user["id"]), 404)


def test_empty_operations_list_changes_nothing(harness):
    user = validator_user(harness.entra)
    response = replay(harness.entra, "validator-patch-user-empty-operations", user_id=user["id"])
    body = scim(response, 200)
    assert body == user
    assert get_user(harness.entra, user["id"]) == user


# ============================================================================ validator: groups


def test_validator_create_a_new_group(harness):
    response = replay(
        harness.entra,
        "validator-create-group",
        group_name="REPLAYGROUPQZ",
        external_id="087af0b9-d1e1-480d-acb8-03ceaa8ea85c",
    )
    body = scim(response, 201)
    assert body["schemas"] == [CORE_GROUP]
    assert body["id"]
    assert body["displayName"] == "REPLAYGROUPQZ"
    assert body["externalId"] == "087af0b9-d1e1-480d-acb8-03ceaa8ea85c"
    assert body.get("members", []) == []
    assert body["meta"]["resourceType"] == "Group"
    assert body["meta"]["location"].endswith(f"/scim/v2/sources/entra/Groups/{body['id']}")
    assert response.headers["location"] == body["meta"]["location"]
    assert get_group(harness.entra, body["id"]) == body


def test_validator_create_a_duplicate_group(harness):
    created = validator_group(harness.entra)
    response = replay(
        harness.entra,
        "validator-create-group",
        group_name="REPLAYGROUPQZ",
        external_id=str(uuid.uuid4()),
    )
    scim_error(response, 409, "uniqueness")
    (only,) = listed(harness.entra.get("/Groups"), 1)
    assert only["id"] == created["id"]


def test_validator_get_group_by_id_excluding_members(harness):
    group, _ = group_with_members(harness, "ada")
    response = replay(harness.entra, "validator-get-group-excluding-members", group_id=group["id"])
    body = scim(response, 200)
    assert "members" not in body
    assert body["id"] == group["id"]
    assert body["displayName"] == "REPLAYGROUPQZ"
    assert body["externalId"] == group["externalId"]


def test_validator_filter_for_existing_group_excluding_members(harness):
    group, _ = group_with_members(harness, "ada")
    validator_group(harness.entra, "OTHERGROUPQZ")
    response = replay(
        harness.entra, "validator-filter-group-excluding-members", group_name="REPLAYGROUPQZ"
    )
    (found,) = listed(response, 1)
    assert found["id"] == group["id"]
    assert "members" not in found


def test_validator_filter_for_an_existing_group(harness):
    group, (ada,) = group_with_members(harness, "ada")
    validator_group(harness.entra, "OTHERGROUPQZ")
    (found,) = listed(
        replay(harness.entra, "validator-filter-group", group_name="REPLAYGROUPQZ"), 1
    )
    assert found["id"] == group["id"]
    assert found["displayName"] == "REPLAYGROUPQZ"
    assert member_ids(found) == [ada]


def test_validator_filter_for_a_non_existing_group(harness):
    validator_group(harness.entra)
    listed(replay(harness.entra, "validator-filter-group", group_name="NOSUCHGROUPQZ"), 0)


def test_validator_filter_for_existing_group_with_a_different_case(harness):
    group = validator_group(harness.entra)
    (found,) = listed(
        replay(harness.entra, "validator-filter-group", group_name="replaygroupqz"), 1
    )
    assert found["id"] == group["id"]
    assert found["displayName"] == "REPLAYGROUPQZ"


def test_validator_patch_group_replace_attributes(harness):
    group = validator_group(harness.entra)
    response = replay(
        harness.entra,
        "validator-patch-group-replace-attributes",
        group_id=group["id"],
        external_id="663fa3a8-e2b6-4ac0-96c8-363432cdc01e",
    )
    body = scim(response, 200)
    assert body["id"] == group["id"]
    assert body["externalId"] == "663fa3a8-e2b6-4ac0-96c8-363432cdc01e"
    assert body["displayName"] == "REPLAYGROUPQZ"
    fetched = get_group(harness.entra, group["id"])
    assert fetched["externalId"] == "663fa3a8-e2b6-4ac0-96c8-363432cdc01e"
    assert fetched["displayName"] == "REPLAYGROUPQZ"


def test_validator_update_group_display_name(harness):
    group = validator_group(harness.entra)
    response = replay(
        harness.entra,
        "validator-update-group-displayname",
        group_id=group["id"],
        group_name="RENAMEDGROUPQZ",
    )
    assert scim(response, 200)["displayName"] == "RENAMEDGROUPQZ"
    assert get_group(harness.entra, group["id"])["displayName"] == "RENAMEDGROUPQZ"
    (found,) = listed(
        replay(harness.entra, "validator-filter-group", group_name="RENAMEDGROUPQZ"), 1
    )
    assert found["id"] == group["id"]
    listed(replay(harness.entra, "validator-filter-group", group_name="REPLAYGROUPQZ"), 0)


def test_validator_patch_group_add_member(harness):
    group = validator_group(harness.entra)
    member = tutorial_user(harness.entra, "ada")
    response = replay(
        harness.entra,
        "validator-patch-group-add-member",
        group_id=group["id"],
        member_id=member["id"],
    )
    assert scim(response, 200)["id"] == group["id"]
    assert member_ids(get_group(harness.entra, group["id"])) == [member["id"]]


def test_validator_patch_group_remove_member(harness):
    group = validator_group(harness.entra)
    ada = tutorial_user(harness.entra, "ada")["id"]
    bob = tutorial_user(harness.entra, "bob")["id"]
    setup = replay(
        harness.entra,
        "validator-patch-group-add-two-members",
        group_id=group["id"],
        member_id=ada,
        other_member_id=bob,
    )
    scim(setup, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == sorted([ada, bob])
    response = replay(
        harness.entra, "validator-patch-group-remove-member", group_id=group["id"], member_id=ada
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == [bob]


def test_validator_patch_group_multiple_ops_on_same_attribute(harness):
    group = validator_group(harness.entra)
    member = tutorial_user(harness.entra, "ada")
    response = replay(
        harness.entra,
        "validator-patch-group-multiple-ops-same-attribute",
        group_id=group["id"],
        member_id=member["id"],
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == []


def test_validator_delete_a_group(harness):
    group = validator_group(harness.entra)
    scim(replay(harness.entra, "validator-delete-group", group_id=group["id"]), 204)
    scim_error(replay(harness.entra, "validator-get-group", group_id=group["id"]), 404)
    listed(replay(harness.entra, "validator-filter-group", group_name="REPLAYGROUPQZ"), 0)


def test_validator_delete_a_non_existent_group(harness):
    validator_group(harness.entra)
    scim_error(replay(harness.entra, "validator-delete-group", group_id=str(uuid.uuid4())), 404)
    assert len(listed(harness.entra.get("/Groups"), 1)) == 1


def test_validator_delete_the_same_group_twice(harness):
    group = validator_group(harness.entra)
    scim(replay(harness.entra, "validator-delete-group", group_id=group["id"]), 204)
    scim_error(replay(harness.entra, "validator-delete-group", group_id=group["id"]), 404)


# ============================================================================ tutorial: groups


def test_tutorial_create_group(harness):
    # The tutorial's body carries Microsoft's old ADSCIM schema URI and a `meta`.
    response = replay(
        harness.entra,
        "tutorial-create-group",
        group_name="Tutorial Group",
        external_id="8aa1a0c0-c4c3-4bc0-b4a5-2ef676900160",
    )
    body = scim(response, 201)
    assert CORE_GROUP in body["schemas"]
    assert body["displayName"] == "Tutorial Group"
    assert body["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900160"
    assert body.get("members", []) == []
    assert body["meta"]["resourceType"] == "Group"
    assert body["meta"]["created"]


def test_tutorial_get_group(harness):
    group, _ = group_with_members(harness, "ada")
    body = scim(replay(harness.entra, "tutorial-get-group", group_id=group["id"]), 200)
    assert "members" not in body
    assert body["id"] == group["id"]
    assert body["displayName"] == group["displayName"]
    assert body["externalId"] == group["externalId"]


def test_tutorial_get_group_by_display_name(harness):
    group = validator_group(harness.entra, "displayName")
    validator_group(harness.entra, "displayName2")
    response = replay(harness.entra, "tutorial-get-group-by-displayname", group_name="displayName")
    (found,) = listed(response, 1)
    assert found["id"] == group["id"]
    assert "members" not in found


def test_tutorial_update_group_non_member_attributes(harness):
    group = validator_group(harness.entra)
    new_name = "1879db59-3bdf-4490-ad68-ab880a269475updatedDisplayName"
    response = replay(
        harness.entra, "tutorial-update-group-non-member", group_id=group["id"], group_name=new_name
    )
    assert scim(response, 200)["displayName"] == new_name
    assert get_group(harness.entra, group["id"])["displayName"] == new_name


def test_tutorial_update_group_add_members(harness):
    # {"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}
    group = validator_group(harness.entra)
    member = tutorial_user(harness.entra, "ada")
    response = replay(
        harness.entra,
        "tutorial-update-group-add-members",
        group_id=group["id"],
        member_id=member["id"],
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == [member["id"]]


def test_tutorial_update_group_remove_members(harness):
    group, (ada, bob) = group_with_members(harness, "ada", "bob")
    response = replay(
        harness.entra, "tutorial-update-group-remove-members", group_id=group["id"], member_id=ada
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == [bob]


def test_tutorial_delete_group(harness):
    group = validator_group(harness.entra)
    scim(replay(harness.entra, "tutorial-delete-group", group_id=group["id"]), 204)
    scim_error(replay(harness.entra, "validator-get-group", group_id=group["id"]), 404)


def test_update_multiple_group_memberships_with_a_single_patch(harness):
    group, (cyd,) = group_with_members(harness, "cyd")
    ada = tutorial_user(harness.entra, "ada")["id"]
    bob = tutorial_user(harness.entra, "bob")["id"]
    response = replay(
        harness.entra,
        "entra-group-add-remove-members-one-patch",
        group_id=group["id"],
        member_id=ada,
        other_member_id=bob,
        third_member_id=cyd,
    )
    scim(response, 200)
    assert member_ids(get_group(harness.entra, group["id"])) == sorted([ada, bob])


# ======================================================================== the strict scim source
#
# The same payloads to a generic `scim` source, which stays strict RFC 7643/7644.
#
# On "op" case: RFC 7644 §3.5.2 says each operation "MUST have exactly one "op" member, whose
# value indicates the operation to perform and MAY be one of "add", "remove", or "replace"", and
# nowhere makes that value case-insensitive (RFC 7643 §2.1's case-insensitivity covers attribute
# names, and §3.4.2.2's covers filter operators, not PATCH op values); no verified erratum
# changes it as far as we found. Microsoft's tutorial reads §3.5.2 as asking servers not to
# match "op" case-sensitively. idgate reads it (and "True"/"False" booleans, and dotted keys)
# on every source, as scim2-models does: none of them can be mistaken for another request.
# The other tests send RFC-cased ops (lowercase_ops) so each tests one Entra-only reading.


def scim_user(client, user_name: str) -> dict[str, Any]:
    body = {"schemas": [CORE_USER], "userName": user_name, "displayName": "Strict User"}
    body["emails"] = [{"type": "work", "value": f"{user_name}@contoso.example", "primary": True}]
    return scim(client.post("/Users", json=body), 201)


def assert_refused_and_unchanged(client, request: dict[str, Any], user: dict[str, Any]) -> None:
    scim_error(send(client, request), 400)
    assert get_user(client, user["id"]) == user


def test_strict_scim_reads_the_unambiguous_forms_the_same_way(harness):
    # Decision: scim2-models reads a capitalised op, "True"/"False" for a boolean and dotted
    # keys in a path-less replace under every policy, since none of them can be mistaken for
    # another request; "strict" refuses what needs Entra's own reading (the tests around this
    # one). The strict source must then apply them exactly as RFC-cased requests.
    user = scim_user(harness.scim, "strict")
    disabled = scim(
        send(harness.scim, request_of("tutorial-disable-user", user_id=user["id"])), 200
    )
    assert disabled["active"] is False
    enabled = scim(
        send(harness.scim, request_of("compat-enable-user-without-flag", user_id=user["id"])), 200
    )
    assert enabled["active"] is True
    request = request_of("compat-replace-multiple-with-flag", user_id=user["id"])
    replaced = scim(send(harness.scim, request), 200)
    assert replaced["name"] == {"givenName": "Fgvn", "familyName": "Ffam"}
    assert replaced[ENTERPRISE]["employeeNumber"] == "Femp"


def test_strict_scim_refuses_member_removal_with_a_value_list(harness):
    # RFC 7644 §3.5.2.2: a remove without a filter removes every value; a "value" on a remove
    # has no meaning. Refusing is the only reading that cannot empty the group by mistake.
    members = [scim_user(harness.scim, name)["id"] for name in ("sa", "sb")]
    group = scim(
        harness.scim.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Strict"}), 201
    )
    setup = replay(
        harness.scim,
        "validator-patch-group-add-two-members",
        group_id=group["id"],
        member_id=members[0],
        other_member_id=members[1],
    )
    scim(setup, 200)
    request = request_of(
        "compat-remove-member-without-flag", group_id=group["id"], member_id=members[0]
    )
    scim_error(send(harness.scim, lowercase_ops(request)), 400)
    assert member_ids(get_group(harness.scim, group["id"])) == sorted(members)
    # The flag's form is RFC 7644 §3.5.2.2 exactly, and the strict source takes it.
    flagged = replay(
        harness.scim, "compat-remove-member-with-flag", group_id=group["id"], member_id=members[0]
    )
    scim(flagged, 200)
    assert member_ids(get_group(harness.scim, group["id"])) == [members[1]]


def test_strict_scim_refuses_manager_as_a_raw_string(harness):
    # RFC 7643 §4.3: manager is a complex attribute; its id goes in the "value" sub-attribute.
    boss = scim_user(harness.scim, "boss")
    user = scim_user(harness.scim, "strict")
    request = request_of(
        "validator-add-manager-raw-string", user_id=user["id"], manager_id=boss["id"]
    )
    assert_refused_and_unchanged(harness.scim, request, user)


def test_strict_scim_refuses_unqualified_manager_path_with_an_array(harness):
    # "manager" is not a core User attribute (RFC 7644 §3.10: extension attributes are
    # URN-qualified), and manager is single-valued (RFC 7643 §4.3), so an array cannot be it.
    boss = scim_user(harness.scim, "boss")
    user = scim_user(harness.scim, "strict")
    request = request_of(
        "tutorial-add-manager-unqualified-array",
        user_id=user["id"],
        manager_id=boss["id"],
        manager_ref=boss["meta"]["location"],
    )
    assert_refused_and_unchanged(harness.scim, lowercase_ops(request), user)


def test_strict_scim_refuses_empty_operations(harness):
    # RFC 7644 §3.5.2: "Operations" is "an array of one or more PATCH operations".
    user = scim_user(harness.scim, "strict")
    request = request_of("validator-patch-user-empty-operations", user_id=user["id"])
    assert_refused_and_unchanged(harness.scim, request, user)


@pytest.mark.parametrize(
    ("sample", "values"),
    [
        ("tutorial-query-user-by-externalid-unquoted", {"external_id": "jyoung"}),
        ("tutorial-filter-user-unquoted-username", {"user_name": "strict@contoso.example"}),
    ],
)
def test_strict_scim_refuses_unquoted_filter_values(harness, sample, values):
    # RFC 7644 §3.4.2.2: compValue is false / null / true / number / string (a quoted JSON
    # string); a bare word is not a value.
    scim_user(harness.scim, "strict")
    scim_error(send(harness.scim, request_of(sample, **values)), 400, "invalidFilter")


def test_strict_scim_takes_the_rfc_valid_entra_requests(harness):
    # meta in a create body is read-only and ignored (RFC 7644 §3.3); emails[type eq "work"].value
    # is an RFC 7644 §3.5.2 value path; the validator's Add Manager (URN-qualified path, complex
    # value) and the flag's disable (lowercase op, boolean) are plain RFC.
    created = tutorial_user(harness.scim, "strict")
    assert created["meta"]["location"].endswith(f"/scim/v2/sources/scim/Users/{created['id']}")
    request = lowercase_ops(request_of("tutorial-update-user-multi-valued", user_id=created["id"]))
    body = scim(send(harness.scim, request), 200)
    assert body["emails"] == [
        {"primary": True, "type": "work", "value": "ada.updated@contoso.example"}
    ]
    assert body["name"]["familyName"] == "UpdatedReplay"
    boss = scim_user(harness.scim, "boss")
    body = scim(
        replay(harness.scim, "validator-add-manager", user_id=created["id"], manager_id=boss["id"]),
        200,
    )
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    body = scim(replay(harness.scim, "compat-disable-user-with-flag", user_id=created["id"]), 200)
    assert body["active"] is False
    assert get_user(harness.scim, created["id"]) == body
