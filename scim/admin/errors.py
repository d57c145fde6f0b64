"""The admin API's errors: every failure becomes one `ApiError`, mapped once (STYLE habit 5).

`domain_error` is the one table from the gateway's exception tree (`gateway.errors`) to an
HTTP status and an error code (docs/admin-api.md, "Errors"). Bodies are always
`{"error", "detail"}` plus `field`, `source_status` or `job` where they apply; a traceback
never reaches a client: anything unexpected is a 500 `internal` whose cause goes to the log.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import (
    Conflict,
    EnableRefused,
    IdgateError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.jobs.service import JobRunning
from scim.errors import outage_answer

#: RFC 6750 §3: the challenge of a request without a valid token.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="idgate-admin"'}


class ApiError(Exception):
    """An error answer: status, code, human detail, and the body's other members."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.members = members

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.members}

    def response(self) -> Response:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def unauthorized() -> ApiError:
    detail = "a valid admin bearer token is required"
    return ApiError(401, "unauthorized", detail, headers=CHALLENGE)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def invalid_input(field: str, detail: str) -> ApiError:
    return ApiError(400, "invalid_input", detail, field=field)


INTERNAL = ApiError(500, "internal", "the gateway failed to answer; its log says why")


def domain_error(exc: IdgateError) -> ApiError:
    """The answer to a domain error. Its message is safe to show an operator (gateway.errors).

    The subclasses come before their bases: a `JobRunning` is a `Conflict` too.
    """
    detail = str(exc)
    match exc:
        case PermissionDenied():
            return ApiError(403, "forbidden", detail)
        case NotFound():
            return not_found(detail)
        case InvalidInput(field=field):
            return invalid_input(field, detail)
        case EnableRefused(source_status=status):
            return ApiError(409, "enable_refused", detail, source_status=status)
        case JobRunning(job_id=job_id):
            return ApiError(409, "job_running", detail, job=job_id)
        case Conflict():
            return ApiError(409, "conflict", detail)
        case UpstreamTimeout():
            return ApiError(504, "upstream_timeout", detail)
        case UpstreamError():
            return ApiError(502, "upstream_unavailable", detail)
    # A new kind of domain error nobody mapped: a bug of this table, answered as one.
    return INTERNAL


def outage_error(exc: BaseException) -> ApiError | None:
    """The answer to a store outage (the HTTP front's one table, `scim.errors.OUTAGES`), or
    None when `exc` is not one (then it is a bug)."""
    answer = outage_answer(exc)
    return None if answer is None else ApiError(answer.status, answer.code, answer.detail)


def validation_error(exc: ValidationError, *, where: str) -> ApiError:
    """400 `invalid_input` naming the first field pydantic refused (`where` for the whole
    body or query: malformed JSON, not an object). The value itself is never repeated: it
    may be personal data."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or where
    if first["type"] == "extra_forbidden":
        detail = f"unknown field {field!r}"
    elif first["type"] == "json_invalid":
        detail = "the body is not valid JSON"
    else:
        detail = f"{field}: {first['msg']}" if field != where else first["msg"]
    return invalid_input(field, detail)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals under /admin (no such route, a method the route lacks),
    in the API's shape; the `Allow` header of a 405 is kept."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_input")
    detail = "no such route" if exc.status_code == 404 else str(exc.detail)
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed here"
    return ApiError(exc.status_code, code, detail, headers=exc.headers).response()
