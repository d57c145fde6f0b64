"""The reference of the SCIM benchmark: scim2-server's own test server, preloaded.

`python -m bench.scimref --users N --port P --bearer-token T` builds the server exactly as
the `scim2-server` command (`scim2_server.testserver.cli.main`) does with its defaults and
one `--bearer-token`: RFC 7643's schemas and resource types, the default service provider
configuration plus the bearer-token scheme, a `ScimService`, an `InMemoryStorage`, the
`BearerTokenApplication` WSGI app, served by the CLI's `ThreadingWSGIServer` (wsgiref, one
thread per connection) through `wsgiref.simple_server.make_server`. The only addition: before
serving, it creates the N bench users (bench/scimusers.py) through the storage's `create`,
each validated by the service's own User model as a POST body is, so that the store holds
what N POSTs would have left there. Then it prints the CLI's banner and serves until SIGTERM.

As the project ships it, wsgiref speaks HTTP/1.0 and closes the connection after every
response (no keep-alive), logs one access line per request to stderr (here the log file), and
listens with socketserver's backlog of 5 (`request_queue_size`): with 32 clients connecting
for every request the queue overflows, and a dropped SYN is retried by the client's kernel
after 1 s. `--request-queue-size N` (not a CLI option; `bench scim --reference-backlog N`)
changes only that, to show what the reference does without those stalls.

`ReferenceServer` runs that launcher as a throwaway process (tests.servers.process).
"""

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from bench.scimusers import payload
from tests.servers.ldap_client import accepts
from tests.servers.process import ServerProcess

BANNER = "Serving SCIM on"


class ReferenceError(RuntimeError):
    """The reference server could not start."""


class ReferenceServer(ServerProcess):
    """`python -m bench.scimref` in a temp dir: scim2-server's test server with `users`
    bench users, on a free loopback port. Ready when it prints the CLI's banner."""

    program = "scim2-server"
    _error = ReferenceError
    # Loading 100,000 users takes ~25-40 s on a 2-core VM.
    start_timeout: ClassVar[float] = 900.0
    stop_timeout: ClassVar[float] = 10.0
    poll_interval: ClassVar[float] = 0.1

    def __init__(self, users: int, token: str, port: int, *, backlog: int | None = None) -> None:
        super().__init__()
        self.users = users
        self.token = token
        self.port = port
        #: The listen backlog; None: as shipped (socketserver's request_queue_size, 5).
        self.backlog = backlog

    @property
    def base_url(self) -> str:
        """Where the SCIM endpoints are: /v2/Users and so on."""
        return f"http://127.0.0.1:{self.port}/v2"

    def start(self) -> None:
        if self.running:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-bench-scimref-"))
        command = [
            sys.executable, "-m", "bench.scimref",
            "--users", str(self.users), "--port", str(self.port), "--bearer-token", self.token,
        ]  # fmt: skip
        if self.backlog is not None:
            command += ["--request-queue-size", str(self.backlog)]
        root = Path(__file__).resolve().parents[1]
        self._launch(
            ["env", "-C", str(root), *command], log_dir=self.workdir, env=None
        )  # cwd: the checkout, so that `bench` imports

    def load_seconds(self) -> float | None:
        """How long the launcher took to create the users (from its log)."""
        for line in self.log_text().splitlines():
            if line.startswith("loaded "):
                return float(line.split(" in ")[1].split()[0])
        return None

    def _ready(self) -> bool:
        return BANNER in self.log_text() and accepts("127.0.0.1", self.port)

    def _location(self) -> str:
        return f"port {self.port}"


# -- the launcher (runs in the reference's own process) ---------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scimref", description=__doc__)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hostname", default="127.0.0.1")
    parser.add_argument("--bearer-token", required=True)
    parser.add_argument(
        "--request-queue-size",
        type=int,
        help="listen backlog (not a CLI option: wsgiref's default of 5 when absent)",
    )
    args = parser.parse_args(argv)

    import logging
    import os
    import secrets
    from wsgiref.simple_server import make_server

    from scim2_models import Context, ScimProvider
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
    from scim2_server.testserver.cli import ThreadingWSGIServer
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    # What cli.main() does with no option but --bearer-token (and no --debug).
    logging.basicConfig(level=logging.INFO)
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    secret = os.environ.get("SCIM2_SERVER_SECRET") or secrets.token_urlsafe(32)
    service = ScimService(provider, secret=secret)
    storage = InMemoryStorage()
    app = BearerTokenApplication(
        storage, provider, service=service, bearer_tokens=[args.bearer_token]
    )

    # The addition: the bench users, created through the storage as the handler creates them.
    began = time.perf_counter()
    user_type = service.get_resource_type_by_endpoint("/Users")
    assert user_type is not None
    model: Any = service.get_model(user_type)
    for index in range(1, args.users + 1):
        resource = model.model_validate(payload(index), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        storage.create(user_type, resource)
    print(f"loaded {args.users} users in {time.perf_counter() - began:.2f} s", file=sys.stderr)

    # SIGTERM ends serve_forever as the CLI's Ctrl-C does.
    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    server_class = ThreadingWSGIServer
    if args.request_queue_size is not None:
        server_class = type(
            "BacklogServer", (ThreadingWSGIServer,), {"request_queue_size": args.request_queue_size}
        )
    with make_server(args.hostname, args.port, app, server_class=server_class) as server:
        print(f"{BANNER} http://{args.hostname}:{args.port}/v2", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
