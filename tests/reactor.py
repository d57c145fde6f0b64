"""The global Twisted reactor, run in one daemon thread per test process.

Code under test that lives on the reactor (the directory's binds, the authenticator) is
called from a test's thread through `blocking(fn, *args)`: `fn` runs on the reactor's
thread and, when it returns a Deferred, the call waits for its result (or raises its error).
The reactor is started on first use, without signal handlers (it is not the main thread),
and dies with the process.
"""

import threading
from typing import Any, TypeVar

from twisted.internet import threads

__all__ = ["blocking", "running_reactor"]

R = TypeVar("R")

_lock = threading.Lock()
_thread: threading.Thread | None = None


def running_reactor() -> Any:
    """The global reactor, running in its thread (started here the first time)."""
    global _thread
    # Imported late, as library code does: whoever installs a reactor first wins.
    from twisted.internet import reactor

    with _lock:
        if _thread is None:
            _thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="test-reactor",
                daemon=True,
            )
            _thread.start()
    return reactor


def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn(*args, **kwargs)` on the reactor's thread and wait for its (Deferred) result.

    Raises:
        whatever `fn` raises or its Deferred fails with.
    """
    return threads.blockingCallFromThread(running_reactor(), fn, *args, **kwargs)
