"""What Microsoft Entra ID sends that RFC 7644 does not say, rewritten into what it means.

scim2-models reads most of Entra's dialect itself under `scim.schemas.ENTRA_POLICY`
(capitalised ops, "True"/"False" strings, dotted keys in a path-less replace, a `remove`
whose value lists the members to remove, a `replace` on an email that is not there yet). The
rest is rewritten here, on the decoded JSON, before validation — pure functions, one per shape
(Microsoft's "Known issues and resolutions with SCIM 2.0 protocol compliance"):

- the enterprise `manager` as a bare id, an array, an unqualified `manager` path, and its
  removal by a replace with `{"value": ""}`;
- an unquoted string in a filter (`userName eq someone@example.org`).

An empty `Operations` list is answered by the handler (nothing changes); generic `scim`
sources get none of this and stay strict.
"""

import re
from typing import Any

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_MANAGER_PATHS = {"manager", "manager.value", f"{ENTERPRISE}:manager".casefold()}
_MANAGER_VALUE = f"{ENTERPRISE}:manager.value".casefold()


def patch_body(body: Any) -> Any:
    """A PatchOp body with Entra's manager shapes rewritten."""
    if not isinstance(body, dict):
        return body
    key = next((k for k in body if k.casefold() == "operations"), None)
    operations = body.get(key) if key else None
    if not isinstance(operations, list):
        return body
    return {**body, key: [_operation(op) for op in operations]}


def _operation(op: Any) -> Any:
    if not isinstance(op, dict):
        return op
    path = op.get("path")
    if isinstance(path, str) and path.casefold() in (*_MANAGER_PATHS, _MANAGER_VALUE):
        return _manager_operation(op)
    value = op.get("value")
    if path is None and isinstance(value, dict):
        return {**op, "value": _pathless_value(value)}
    if str(op.get("op", "")).casefold() == "remove" and isinstance(value, list):
        # The tutorial's member removal sends {"$ref": null, "value": id}: the null is no
        # part of what selects the member (a stored member's $ref is never null).
        return {**op, "value": [_without_nulls(item) for item in value]}
    return op


def _without_nulls(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    return {key: value for key, value in item.items() if value is not None}


def _manager_operation(op: dict[str, Any]) -> dict[str, Any]:
    """`manager` / `manager.value` ops: the whole manager, or its removal."""
    verb = str(op.get("op", "")).casefold()
    manager = _manager(op.get("value"))
    if verb == "remove" or manager is None:
        # Entra removes a manager with a replace of {"value": ""} (Known issues: "manager").
        return {"op": "remove", "path": f"{ENTERPRISE}:manager"}
    return {**op, "path": f"{ENTERPRISE}:manager", "value": manager}


def _manager(value: Any) -> dict[str, Any] | None:
    """A manager value in any of Entra's shapes, as {"value": id}; None for "no manager"."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        # An object keeps its other members ($ref); only an empty value means "no manager".
        manager_id = value.get("value")
        return dict(value) if isinstance(manager_id, str) and manager_id.strip() else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return {"value": str(value)}


def _pathless_value(value: dict[str, Any]) -> dict[str, Any]:
    """A path-less add/replace: its manager keys rewritten, whether dotted or nested."""
    rewritten: dict[str, Any] = {}
    for key, item in value.items():
        folded = key.casefold()
        if folded in _MANAGER_PATHS or folded == _MANAGER_VALUE:
            rewritten[f"{ENTERPRISE}:manager"] = _manager(item)
        elif folded == ENTERPRISE.casefold() and isinstance(item, dict):
            rewritten[key] = {
                k: (_manager(v) if k.casefold() == "manager" else v) for k, v in item.items()
            }
        else:
            rewritten[key] = item
    return rewritten


# comparison operator, then a value that is not quoted, not a JSON literal and not a number
_UNQUOTED = re.compile(
    r"(?P<op>\s(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)"
    r"(?!(?:true|false|null)(?:[\s)\]]|$))(?P<value>[^\s\"()\[\]]+)",
    re.IGNORECASE,
)


def filter_text(text: str) -> str:
    """Quote the bare string values Entra puts in filters (`userName eq a@b.org`)."""

    def quote(match: re.Match[str]) -> str:
        value = match["value"]
        if _NUMBER.fullmatch(value):
            return match[0]
        return f'{match["op"]}"{value}"'

    # Only outside string literals: `displayName eq "a eq b"` must stay as it is.
    pieces = _STRING.split(text)
    return "".join(
        piece if index % 2 else _UNQUOTED.sub(quote, piece) for index, piece in enumerate(pieces)
    )


#: A JSON string literal (RFC 7644 §3.4.2.2 compValue), kept whole by the split.
_STRING = re.compile(r'("(?:[^"\\]|\\.)*")')


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
