"""The composition root: the runtime's services (`gateway.runtime.wiring`) connected to both
fronts, and the loop that serves them.

It is the only module of `gateway` that imports a front (the import contract in pyproject.toml
allows exactly this); everything it builds is passed on explicitly, nothing is global.
`Runtime`, `build` and `works` are the wiring's, named here too: the entry points, the tests and
the benchmarks reach the whole process through this one module.
"""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gateway.auth.service_accounts import ServiceAccounts
from gateway.config import LdapConfig
from gateway.runtime.wiring import Runtime, build, failure_limiter, works
from gateway.users.service import utcnow
from gateway.users.tree import DirectoryTree
from ldapproxy.listen import Listeners, listen, tls_of
from ldapproxy.server import Services

if TYPE_CHECKING:
    from gateway.runtime.demo import DemoDirectory

__all__ = [
    "ListenError",
    "QuietServer",
    "Runtime",
    "build",
    "http_app",
    "ldap_services",
    "serve",
    "works",
]

log = logging.getLogger("idgate")


class ListenError(Exception):
    """A front could not listen where the configuration says: the address is taken, not this
    host's, or needs privileges. The message names the setting."""


def _cannot_listen(key: str, host: str, port: int, reason: object) -> ListenError:
    return ListenError(f"{key}: cannot listen on {host}:{port}: {reason}")


def _bind(key: str, host: str, port: int) -> socket.socket:
    """A bound TCP socket for the HTTP front (uvicorn listens on it).

    Bound here rather than by uvicorn, which answers a taken port with `sys.exit`: that ends
    the event loop under the LDAP front's shutdown and prints a traceback for a config error.

    Raises:
        ListenError: the address does not resolve, is taken, or needs privileges.
    """
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise _cannot_listen(key, host, port, exc.strerror or exc) from exc
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `serve` handles signals for both fronts."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    runtime: Runtime,
    *,
    only: str | None = None,
    demo: "DemoDirectory | None" = None,
    started: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve the fronts on one event loop until SIGINT or SIGTERM (SPEC §1).

    Twisted runs on asyncio's loop (its asyncio reactor), so the LDAP front, uvicorn's HTTP
    front and the demo directory share one loop; blocking work goes to thread pools.

    Args:
        only: "ldap" or "http" to run one front; None runs both.
        demo: the built-in demo directory to start first (no config given).
        started: told the listeners' URLs once everything listens.

    Raises:
        ListenError: a front cannot listen where the configuration says.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    # Installed before anything imports twisted.internet.reactor (nothing at module level does).
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    try:
        loop.run_until_complete(_serve(runtime, reactor, only, demo, started))
    finally:
        runtime.close()
        loop.close()


async def _serve(
    runtime: Runtime,
    reactor: Any,
    only: str | None,
    demo: "DemoDirectory | None",
    started: Callable[[list[str]], None] | None,
) -> None:
    """Start the background jobs, the demo directory and the fronts; wait for a signal (or
    the HTTP front's end); then close what was started."""
    stop = _stop_on_signals()
    reactor.startRunning(installSignalHandlers=False)
    runtime.start_background()
    if demo is not None:
        demo.listen(reactor)
    pool = runtime.workers.pool
    listeners: Listeners | None = None
    http: _HttpFront | None = None
    urls: list[str] = []
    try:
        if only in (None, "ldap"):
            runtime.workers.start()
            listeners = _listen_ldap(runtime, reactor, pool)
            urls += _ldap_urls(listeners)
        if only in (None, "http"):
            http = _HttpFront.start(runtime)
            urls += await http.urls()
        if started is not None:
            started(urls)
        await _until_stopped(stop, http)
        log.info("idgate shutting down")
    finally:
        await _shut_down(listeners, http, pool, demo)
        # The reactor's own threads resolve upstream host names (HostnameEndpoint): its
        # shutdown triggers never fire on asyncio's loop, so stop them here, or the process
        # would wait for them at exit.
        resolver = getattr(reactor, "threadpool", None)
        if resolver is not None and resolver.started:
            await asyncio.get_running_loop().run_in_executor(None, resolver.stop)


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGINT and SIGTERM set, on the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _listen_ldap(runtime: Runtime, reactor: Any, pool: ThreadPool) -> Listeners:
    """The LDAP front, listening; its blocking work runs on `pool`.

    Raises:
        ListenError: `ldap.listen` or `ldap.ldaps_listen` cannot be listened on.
    """
    services = ldap_services(runtime, reactor, pool)
    try:
        return listen(reactor, services, runtime.config.ldap)
    except CannotListenError as exc:
        raise _ldap_listen_error(runtime.config.ldap, exc) from exc


def _ldap_listen_error(ldap: LdapConfig, exc: CannotListenError) -> ListenError:
    """Twisted's error, told under the setting that names the port."""
    tls = ldap.ldaps_listen is not None and exc.port == ldap.ldaps_listen.port
    key = "ldap.ldaps_listen" if tls else "ldap.listen"
    reason = getattr(exc.socketError, "strerror", None) or exc.socketError
    return _cannot_listen(key, exc.interface, exc.port, reason)


def _ldap_urls(listeners: Listeners) -> list[str]:
    """The URLs the LDAP front listens on, each logged."""
    urls: list[str] = []
    for scheme, host, port in listeners.addresses():
        urls.append(f"{scheme}://{host}:{port}")
        log.info("idgate LDAP listening on %s://%s:%d", scheme, host, port)
    return urls


@dataclass
class _HttpFront:
    """uvicorn serving the HTTP front, as a task on the loop."""

    server: QuietServer
    task: asyncio.Task[None]

    @classmethod
    def start(cls, runtime: Runtime) -> "_HttpFront":
        """Bind `http.listen` and start serving `http_app(runtime)` on it.

        Raises:
            ListenError: `http.listen` cannot be listened on.
        """
        config = runtime.config.http
        server = QuietServer(
            uvicorn.Config(
                http_app(runtime),
                host=config.host,
                port=config.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        sock = _bind("http.listen", config.host, config.port)
        return cls(server, asyncio.create_task(server.serve(sockets=[sock])))

    async def urls(self) -> list[str]:
        """Once uvicorn listens: the URLs it listens on, each logged.

        Raises:
            Exception: whatever stopped uvicorn from starting.
        """
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task.done():
            self.task.result()  # the HTTP listener could not start: raise why
        urls: list[str] = []
        for server in self.server.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                urls.append(f"http://{host}:{port}")
                log.info("idgate HTTP listening on http://%s:%d", host, port)
        return urls

    async def close(self) -> None:
        """Let uvicorn finish the requests in flight and stop."""
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)


async def _until_stopped(stop: asyncio.Event, http: _HttpFront | None) -> None:
    """Until a signal sets `stop`, or the HTTP front ends on its own."""
    waiter = asyncio.create_task(stop.wait())
    watched: set[asyncio.Task[Any]] = {waiter} | ({http.task} if http else set())
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)


async def _shut_down(
    listeners: Listeners | None,
    http: _HttpFront | None,
    pool: ThreadPool,
    demo: "DemoDirectory | None",
) -> None:
    """Close what `_serve` started: the fronts first, so that no new request comes in; then
    the LDAP front's threads; the demo directory, which requests may still read, last."""
    if listeners is not None:
        await listeners.close()
    if http is not None:
        await http.close()
    if pool.started:
        await asyncio.get_running_loop().run_in_executor(None, pool.stop)
    if demo is not None:
        await demo.close()


def http_app(runtime: Runtime) -> Starlette:
    """The HTTP front: health, metrics, the SCIM endpoints and the admin API on this
    runtime's services."""
    # Imported here: the HTTP front pulls in scim2-server and scim2-models (about 1.8 s of
    # CPU), which `--only ldap`, the CLI's jobs and every `build()` without HTTP never need.
    from scim.admin import AdminServices
    from scim.app import ScimServices, create_app

    return create_app(
        runtime.readiness.check,
        metrics=runtime.metrics.registry,
        scim=ScimServices(
            runtime.config, runtime.provisioning, runtime.tokens, record=runtime.metrics.scim
        ),
        admin=AdminServices(
            users=runtime.user_admin,
            lookup=runtime.lookup,
            jobs=runtime.jobs,
            administration=runtime.administration,
            tokens=runtime.tokens,
            record=runtime.metrics.scim,
        ),
    )


def ldap_services(runtime: Runtime, reactor: Any, pool: ThreadPool) -> Services:
    """The LDAP front's view of the gateway's services."""
    config = runtime.config

    def run(call: Callable[..., Any], /, *args: Any) -> Any:
        return deferToThreadPool(reactor, pool, call, *args)

    return Services(
        config=config,
        authenticate=runtime.authenticator.authenticate,
        route=runtime.authenticator.route,
        accounts=ServiceAccounts(
            config.ldap.service_accounts, failure_limiter(config, runtime.store), clock=utcnow
        ),
        tree=DirectoryTree(config, runtime.store),
        include=runtime.lookup.include,
        change_password=runtime.passwords.change,
        run=run,
        recorder=runtime.metrics,
        tls_context=tls_of(config.ldap),
        delay=lambda seconds: deferLater(reactor, seconds),
    )
