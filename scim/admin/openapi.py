"""The OpenAPI 3.1 document of the admin API, drawn from the route table (`scim.admin.routes`).

Schemas are the pydantic models' own JSON Schemas (2020-12, which OpenAPI 3.1 uses as is),
gathered under `components/schemas`; each operation says which role it needs, both in words
and as `x-idgate-permission`.
"""

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway import __version__
from scim.admin.call import AdminRoute
from scim.admin.models import PATH_PARAMETERS, Error, NoBody, NoQuery

_REF = "#/components/schemas/{model}"
_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted: the job runs in the background",
    204: "Done; no content",
    400: "Invalid input (`field` names it)",
    401: "No admin token, or not a valid one",
    403: "The administrator's role does not allow this",
    404: "No such resource",
    409: "Conflicts with the current state",
    502: "The directory could not be read",
    504: "The directory did not answer in time",
}


def openapi_path(path: str) -> str:
    """A route path as OpenAPI writes it: `{job_id:int}` → `{job_id}`."""
    return _PARAMETER.sub(r"{\1}", path)


def path_parameters(path: str) -> list[str]:
    return _PARAMETER.findall(path)


def document(routes: Sequence[AdminRoute], *, prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`, served under `prefix`."""
    models: list[tuple[type[Any], JsonSchemaMode]] = [(Error, "serialization")]
    for route in routes:
        if route.answer is not None:
            models.append((route.answer, "serialization"))
        if route.body is not NoBody:
            models.append((route.body, "validation"))
        if route.query is not NoQuery:
            models.append((route.query, "validation"))
    refs, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)
    schemas: dict[str, Any] = definitions.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        item = paths.setdefault(prefix + openapi_path(route.path), {})
        item[route.method.lower()] = _operation(route, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idgate admin API",
            "version": __version__,
            "description": "Sources, jobs, users, audit log and settings (docs/admin-api.md). "
            "Every operation needs an administrator's bearer token.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An `[[admins]]` token (source tokens are never admin ones)",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def _operation(
    route: AdminRoute,
    refs: dict[tuple[type[Any], JsonSchemaMode], Any],
    schemas: dict[str, Any],
) -> dict[str, Any]:
    role = (
        "any administrator"
        if route.permission is None
        else f"needs the `{route.permission.value}` permission"
        + ("" if route.path.startswith("/users") else " (super_admin only)")
    )
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "description": f"Role: {role}.",
        "tags": [route.path.strip("/").split("/")[0].removesuffix(".json")],
        "x-idgate-permission": route.permission.value if route.permission else None,
        "parameters": _parameters(route, refs, schemas),
        "responses": _responses(route, refs),
    }
    if route.body is not NoBody:
        operation["requestBody"] = {
            # A body whose every field is optional may be left out (`{}` is assumed).
            "required": any(f.is_required() for f in route.body.model_fields.values()),
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    return operation


def _parameters(
    route: AdminRoute,
    refs: dict[tuple[type[Any], JsonSchemaMode], Any],
    schemas: dict[str, Any],
) -> list[dict[str, Any]]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": TypeAdapter(PATH_PARAMETERS[name]).json_schema(ref_template=_REF),
        }
        for name in path_parameters(route.path)
    ]
    if route.query is not NoQuery:
        schema = _resolve(refs[(route.query, "validation")], schemas)
        required = set(schema.get("required", ()))
        for name, field in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": field}
            )
    return parameters


def _responses(
    route: AdminRoute, refs: dict[tuple[type[Any], JsonSchemaMode], Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.answer is None:
        responses[str(route.status)] = {"description": _STATUS_TEXT[route.status]}
    else:
        responses[str(route.status)] = {
            "description": _STATUS_TEXT[route.status],
            "content": {"application/json": {"schema": refs[(route.answer, "serialization")]}},
        }
    errors = [401]
    if route.permission is not None:
        errors.append(403)
    if route.query is not NoQuery or route.body is not NoBody:
        errors.append(400)
    if path_parameters(route.path):
        errors.append(404)
    error = {"content": {"application/json": {"schema": refs[(Error, "serialization")]}}}
    for status in sorted({*errors, *route.errors}):
        responses[str(status)] = {"description": _STATUS_TEXT[status], **error}
    return responses


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
    return resolved
