"""The ASGI application of the HTTP front: health, metrics, and the SCIM endpoints (SPEC §7).

/scim/v2/sources/{source_id}/...   a `scim` or `entra` source's provisioning endpoint
/scim/v2/...                       the admin view (administrators' tokens)
/admin/...                         the admin API (JSON; `scim.admin`)

A query's octets that are not printable ASCII are percent-encoded before any route sees them
(`AsciiQuery`): Starlette reads a query as UTF-8 whenever it builds a URL, and a raw 0xE9 was
a 500.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote_from_bytes

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from scim2_models import Resource
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.tokens import BearerTokens
from gateway.config import Config
from gateway.config.sources import EntraSource, ScimSource
from gateway.operations.health import Check
from gateway.users.provisioning import Provisioning
from scim import schemas
from scim.admin import PREFIX as ADMIN_PREFIX
from scim.admin import AdminServices, create_admin_app
from scim.endpoints import (
    Endpoint,
    EntraHandler,
    EntraService,
    IdgateHandler,
    IdgateService,
    RequestRecorder,
    admin_token_check,
    not_found_body,
    source_token_check,
)
from scim.storage import AdminStorage, SourceStorage

ReadinessProbe = Callable[[], Sequence[Check]]


@dataclass(frozen=True)
class ScimServices:
    """What the SCIM endpoints call: the provisioning service and the bearer tokens."""

    config: Config
    provisioning: Provisioning
    tokens: BearerTokens
    #: Told of every SCIM request (endpoint, method, status, seconds), for /metrics.
    record: RequestRecorder | None = None


def create_app(
    readiness: ReadinessProbe,
    *,
    metrics: CollectorRegistry | None = None,
    scim: ScimServices | None = None,
    admin: AdminServices | None = None,
) -> Starlette:
    """Build the HTTP front.

    Args:
        readiness: a blocking probe; it runs in the thread pool, never on the event loop.
        metrics: the Prometheus registry served at /metrics (SPEC §8).
        scim: the services behind /scim/v2; without them no SCIM endpoint is served.
        admin: the services behind the admin API at /admin; without them it is not served.
    """

    async def healthz(_: Request) -> JSONResponse:
        # Liveness: the process answers. Whether it can serve is /readyz's question.
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await run_in_threadpool(readiness)
        ready = all(check.ok for check in checks if check.decides)
        body = {
            "status": "ready" if ready else "not ready",
            "checks": [
                {"name": c.name, "ok": c.ok, "detail": c.detail, "decides": c.decides}
                for c in checks
            ],
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if metrics is not None:
        registry = metrics

        async def metrics_endpoint(_: Request) -> Response:
            body = await run_in_threadpool(generate_latest, registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", metrics_endpoint))
    if admin is not None:
        routes.append(Mount(ADMIN_PREFIX, app=create_admin_app(admin)))
    if scim is not None:
        routes += scim_routes(scim)
    return Starlette(
        routes=routes, exception_handlers={404: _not_found}, middleware=[Middleware(AsciiQuery)]
    )


#: RFC 3986 §3.4: a query is printable ASCII; `quote_from_bytes` leaves these as they are.
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


class AsciiQuery:
    """Percent-encodes the octets of a query that RFC 3986 §2.1 would have had the client
    encode (controls, space, 0x80-0xFF). Starlette decodes a query as UTF-8 when it builds a
    URL (for a 404, or a redirect to the path with or without its slash), and raised on a raw
    0xE9; encoded, each front reads it as it reads a `%E9`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if scope["type"] == "http" and not all(0x21 <= octet < 0x7F for octet in query):
            encoded = quote_from_bytes(query, safe=_PRINTABLE).encode("ascii")
            scope = {**scope, "query_string": encoded}
        await self.app(scope, receive, send)


async def _not_found(request: Request, _: Exception) -> Response:
    """A path no route matches. Under /scim a SCIM Error (RFC 7644 §3.12): a path holding a
    decoded line break (`%0a`) matches no mount, since Starlette's path patterns stop there."""
    if request.url.path.startswith("/scim/"):
        return JSONResponse(
            not_found_body("no such endpoint"), status_code=404, media_type="application/scim+json"
        )
    return PlainTextResponse("Not Found", status_code=404)


def scim_routes(scim: ScimServices) -> list[Mount]:
    """One endpoint per `scim`/`entra` source, and the admin view."""
    public = scim.config.http.public_base_url
    strict = IdgateService(schemas.scim_provider())
    tolerant = EntraService(schemas.entra_provider())
    sources: dict[str, Endpoint] = {}
    for source in scim.config.sources:
        if not isinstance(source, ScimSource | EntraSource) or not source.enabled:
            continue
        is_entra = isinstance(source, EntraSource)
        service = tolerant if is_entra else strict
        sources[source.id] = Endpoint(
            SourceStorage(
                scim.provisioning,
                source.id,
                user_model=cast(type[Resource[Any]], service.provider.model_for("User")),
                hard_delete=source.hard_delete,
            ),
            service.provider,
            service,
            check_token=source_token_check(scim.tokens, source.id),
            name=source.id,
            record=scim.record,
            public_base_url=public,
            handler=EntraHandler if is_entra else IdgateHandler,
        )
    admin_service = IdgateService(schemas.admin_provider())
    admin = Endpoint(
        AdminStorage(scim.provisioning),
        admin_service.provider,
        admin_service,
        check_token=admin_token_check(scim.tokens),
        name="admin",
        record=scim.record,
        public_base_url=public,
        read_only=True,
    )

    async def by_source(scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = sources.get(scope["path_params"].get("source_id", ""))
        if endpoint is None:
            response = JSONResponse(
                not_found_body("no SCIM source with this id"),
                status_code=404,
                media_type="application/scim+json",
            )
            await response(scope, receive, send)
            return
        await cast(ASGIApp, endpoint)(scope, receive, send)

    return [
        Mount("/scim/v2/sources/{source_id}", app=by_source),
        Mount("/scim/v2", app=cast(ASGIApp, admin)),
    ]
