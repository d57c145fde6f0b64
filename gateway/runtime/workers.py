"""The bounded pool where the blocking leaves of the bind path and the LDAP front run.

The LDAP front and the bind path live on the event loop (STYLE habit 12): what still blocks
(a store read or write, an argon2 check, an upstream search through ldap3) is handed to
these threads, and its answer comes back on the loop as a Deferred. The pool is bounded by
`ldap.workers`, so a slow store or directory queues work instead of multiplying threads.
"""

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["Workers"]


class Workers:
    """`workers(call, *args)`: run `call` in the pool; the Deferred fires on the reactor.

    Started on first use (a runtime built for the CLI never starts it); `stop()` ends it.
    """

    def __init__(self, size: int, reactor: Any = None) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=size, name="idgate-workers")
        self._reactor = reactor
        self._lock = threading.Lock()

    def __call__(self, call: Callable[..., Any], /, *args: Any) -> "Deferred[Any]":
        if not self.pool.started:
            self.start()
        return deferToThreadPool(self._loop(), self.pool, call, *args)

    def start(self) -> None:
        with self._lock:
            if not self.pool.started:
                self.pool.start()

    def stop(self) -> None:
        with self._lock:
            if self.pool.started:
                self.pool.stop()

    def _loop(self) -> Any:
        if self._reactor is None:
            # The process's one reactor, imported when first needed, never at import time
            # (STYLE habit 11): the composition root installs the asyncio reactor first.
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor
