"""The ASGI application of the HTTP front."""

from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.health import Check

ReadinessProbe = Callable[[], Sequence[Check]]


def create_app(readiness: ReadinessProbe, *, metrics: CollectorRegistry | None = None) -> Starlette:
    """Build the HTTP front.

    Args:
        readiness: a blocking probe; it runs in the thread pool, never on the event loop.
        metrics: the Prometheus registry served at /metrics (SPEC §8).
    """

    async def healthz(_: Request) -> JSONResponse:
        # Liveness: the process answers. Whether it can serve is /readyz's question.
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await run_in_threadpool(readiness)
        ready = all(check.ok for check in checks)
        body = {
            "status": "ready" if ready else "not ready",
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if metrics is not None:
        registry = metrics

        async def metrics_endpoint(_: Request) -> Response:
            body = await run_in_threadpool(generate_latest, registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", metrics_endpoint))
    return Starlette(routes=routes)
