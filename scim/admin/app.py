"""The admin API's ASGI application, mounted at /admin by `scim.app.create_app`.

Every request goes through the same steps, in this order, before its handler runs:

1. the bearer token is an administrator's (argon2 runs in the thread pool, never on the
   event loop; a token seen before costs a dict look-up) — else 401;
2. the administrator's role holds the route's permission (`scim.admin.routes`) — else 403;
3. the path parameters can name something (`PATH_PARAMETERS`) — else 404;
4. the query parameters are the route's, and valid — else 400 `invalid_input`;
5. the body is at most 64 KiB (413), JSON (415), and the route's model (400).

The handler then runs in the thread pool (it blocks on the database and on directories), and
whatever it raises is answered through `scim.admin.errors`.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import IdgateError
from gateway.users.service import Actor
from scim.admin.call import AdminRoute, AdminServices, Call
from scim.admin.errors import (
    INTERNAL,
    ApiError,
    domain_error,
    http_error,
    invalid_input,
    not_found,
    outage_error,
    unauthorized,
    validation_error,
)
from scim.admin.models import MAX_BODY_BYTES, PATH_PARAMETERS, Body, Query
from scim.admin.routes import ROUTES

log = logging.getLogger(__name__)

#: The metrics' endpoint label of every admin API request (`idgate_scim_requests`).
METRICS_ENDPOINT = "admin-api"

_PATH_ADAPTERS: Mapping[str, TypeAdapter[Any]] = {
    name: TypeAdapter(kind) for name, kind in PATH_PARAMETERS.items()
}

#: What a path parameter names, for the 404's detail.
_NAMED = {
    "source_id": "source",
    "batch_id": "resync",
    "user_id": "user",
    "device_id": "device",
    "job_id": "job",
    "kind": "phone list",
    "index": "phone slot",
}

Endpoint = Callable[[Request], Awaitable[Response]]


def create_admin_app(services: AdminServices) -> Starlette:
    """The admin API on these services: one Starlette route per path of `ROUTES`, each
    dispatching by method to its table row (so a 405 lists every method of the path)."""
    by_path: dict[str, dict[str, AdminRoute]] = defaultdict(dict)
    for route in ROUTES:
        by_path[route.path][route.method] = route
    routes = [
        Route(path, _endpoint(services, rows), methods=list(rows)) for path, rows in by_path.items()
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _endpoint(services: AdminServices, rows: Mapping[str, AdminRoute]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        # Starlette answers HEAD on GET routes; it is served as the GET.
        route = rows["GET" if request.method == "HEAD" else request.method]
        started = time.perf_counter()
        response = await _serve(services, route, request)
        if services.record is not None:
            elapsed = time.perf_counter() - started
            services.record(METRICS_ENDPOINT, request.method, response.status_code, elapsed)
        return response

    return endpoint


async def _serve(services: AdminServices, route: AdminRoute, request: Request) -> Response:
    try:
        actor = await _authenticate(services, request)
        if route.permission is not None:
            actor.require(route.permission)
        call = Call(
            services,
            actor,
            _path(request),
            _query(route.query, request),
            await _body(route.body, request),
        )
        reply = await run_in_threadpool(route.handler, call)
    except ApiError as exc:
        return exc.response()
    except IdgateError as exc:
        answer = domain_error(exc)
        if answer is INTERNAL:
            log.error("admin API %s %s: unmapped %r", route.method, route.path, exc)
        return answer.response()
    except Exception as exc:
        if (outage := outage_error(exc)) is not None:
            log.warning("admin API %s %s: %s", route.method, route.path, outage.detail)
            return outage.response()
        # A bug: the client learns nothing of it, the log everything.
        log.exception("admin API %s %s failed", route.method, route.path)
        return INTERNAL.response()
    if reply is None:
        return Response(status_code=route.status)
    return JSONResponse(reply, status_code=route.status)


async def _authenticate(services: AdminServices, request: Request) -> Actor:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.casefold() != "bearer" or not token:
        raise unauthorized()
    tokens = services.tokens
    actor = tokens.known_admin(token) or await run_in_threadpool(tokens.verify_admin, token)
    if actor is None:
        raise unauthorized()
    return actor


def _path(request: Request) -> dict[str, Any]:
    """The path parameters as their types; one that cannot name anything (a NUL, an id
    longer than any the store holds, a phone list other than sms or voice) is a 404."""
    checked: dict[str, Any] = {}
    for name, value in request.path_params.items():
        try:
            checked[name] = _PATH_ADAPTERS[name].validate_python(value)
        except ValidationError:
            raise not_found(f"no such {_NAMED.get(name, name)}") from None
    return checked


def _query(model: type[Query], request: Request) -> Query:
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in values:
            raise invalid_input(name, f"{name} is given more than once")
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc, where="query") from exc


async def _body(model: type[Body], request: Request) -> Body:
    raw = await _read(request)
    if not raw:
        # No body is an empty object: the model's required fields then say what is missing.
        raw = b"{}"
    else:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc, where="body") from exc


async def _read(request: Request) -> bytes:
    """The body, read no further than the limit: a client cannot make the gateway buffer
    more than 64 KiB, whether it declares a length or streams without one."""
    too_large = ApiError(413, "too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
