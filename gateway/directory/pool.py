"""A small pool of connections, each used by one thread at a time.

`Pool.lease()` hands out an idle connection, or opens one while fewer than `size` exist; a
caller that finds all `size` in use waits up to `wait_seconds`, then gets UpstreamTimeout.
`lease(fresh=True)` opens a new connection even when idle ones wait: a caller retrying after
the server dropped a pooled connection must not be handed its (equally dead) siblings.
A lease ends by putting the connection back, unless the block raised or called `discard()`:
then the connection is closed, since its state is unknown. An idle connection that `stale`
judges unfit (given how long it sat idle) is closed when next taken and another is used.
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.errors import UpstreamTimeout, UpstreamUnavailable

__all__ = ["Lease", "Pool"]

T = TypeVar("T")


@dataclass
class Lease(Generic[T]):
    item: T
    #: The connection served an earlier lease: a failure may just mean the server dropped it.
    reused: bool
    discarded: bool = field(default=False)

    def discard(self) -> None:
        """Close the connection when the lease ends instead of putting it back."""
        self.discarded = True


class Pool(Generic[T]):
    """Thread-safe; `open` and `close` run outside the pool's lock."""

    def __init__(
        self,
        name: str,
        size: int,
        open: Callable[[], T],  # the natural name of the factory
        close: Callable[[T], None],
        stale: Callable[[T, float], bool],
        wait_seconds: float,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._name = name
        self._size = size
        self._open = open
        self._close = close
        self._stale = stale
        self._wait = wait_seconds
        self._slots = threading.BoundedSemaphore(size)
        #: (connection, when it came back), most recently used last.
        self._idle: list[tuple[T, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def lease(self, *, fresh: bool = False) -> Iterator[Lease[T]]:
        """Borrow a connection for the block; with `fresh`, a newly opened one.

        Raises:
            UpstreamTimeout: every connection stayed busy for `wait_seconds`.
            UpstreamUnavailable: the pool is closed; or what `open` raises.
        """
        if self._closed:
            raise UpstreamUnavailable(f"{self._name}: closed")
        if not self._slots.acquire(timeout=self._wait):
            raise UpstreamTimeout(f"{self._name}: all {self._size} connections busy")
        try:
            lease = Lease(self._open(), False) if fresh else Lease(*self._take())
            try:
                yield lease
            except BaseException:
                self._close(lease.item)
                raise
            if lease.discarded:
                self._close(lease.item)
            else:
                self._give_back(lease.item)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close idle connections now, leased ones when they come back; refuse new leases."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for item, _ in idle:
            self._close(item)

    def _take(self) -> tuple[T, bool]:
        while True:
            with self._lock:
                idle = self._idle.pop() if self._idle else None
            if idle is None:
                return self._open(), False
            item, since = idle
            if not self._stale(item, time.monotonic() - since):
                return item, True
            self._close(item)

    def _give_back(self, item: T) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append((item, time.monotonic()))
                return
        self._close(item)
