"""The users of the SCIM benchmark: the same payloads for the gateway and the reference server.

User *i* (1-based) of a loaded store is `payload(i)`: userName `bench-000001@bench.example`,
an externalId, a name, a displayName, one work email and `active: true`, as a provisioning
client creates it. The create/disable cycle posts the same shape under names of its own
(`cycle_payload`), which never clash with the loaded users or with another client's.

Standard library only: the reference server's launcher (bench/scimref.py) imports it too.
"""

from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_name(index: int) -> str:
    return f"bench-{index:06d}@bench.example"


def payload(index: int) -> dict[str, Any]:
    """The creation body of loaded user `index`."""
    return _body(user_name(index), f"ext-{index:06d}", f"User {index:06d}")


def cycle_payload(tag: str, number: int) -> dict[str, Any]:
    """The creation body of the `number`-th user a cycle client creates; `tag` names the
    client and the run (e.g. `r1a2b3c-gw-2`), so names never repeat."""
    name = f"cycle-{tag}-{number:07d}"
    return _body(f"{name}@bench.example", f"ext-{name}", f"Cycle {number:07d}")


#: The PATCH of the cycle: what a client sends to disable a user (RFC 7644 §3.5.2).
DISABLE_PATCH: dict[str, Any] = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


def _body(name: str, external_id: str, family: str) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "externalId": external_id,
        "name": {"givenName": "Bench", "familyName": family},
        "displayName": f"Bench {family}",
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
    }
