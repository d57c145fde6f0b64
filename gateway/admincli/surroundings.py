"""What the admin commands take from the world: the environment variables they read, and
the transport, sleeping, clocks and terminal (`Surroundings`, which tests replace).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

URL_ENV = "IDGATE_URL"
TOKEN_ENV = "IDGATE_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a token)
DEFAULT_URL = "http://127.0.0.1:8080"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Surroundings:
    """What the commands take from the world. Tests replace it through click's `obj`
    (`CliRunner.invoke(main, args, obj=Surroundings(transport=...))`)."""

    #: The HTTP transport (None: the network).
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    #: Monotonic seconds, for pacing output.
    clock: Callable[[], float] = time.monotonic
    #: Wall-clock time, for a running job's elapsed time.
    now: Callable[[], datetime] = _utcnow
    #: Animate (a live panel) or print lines; None asks the terminal.
    interactive: bool | None = None
    poll_seconds: float = 0.5
    #: Without a terminal, at most one line per job per this many seconds (state changes
    #: are always shown).
    line_seconds: float = 5.0
    #: How long polling a job survives losing the gateway before giving up.
    patience_seconds: float = 15.0
    timeout_seconds: float = 30.0
