"""Repeated failed binds of one name are refused before they reach the directory (SPEC §6).

RADIUS servers retransmit, and a client with a stale password retries forever; forwarding
every attempt would lock the account upstream (AD lockout, ppolicy pwdMaxFailure). After
`limit` failures within `window` seconds a name is refused locally until the oldest failure
ages out. The count lives in this process: it protects the directory from one gateway's
traffic; several gateways each hold their own count.
"""

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from gateway.names import name_key


class FailureLimiter:
    """Thread-safe sliding-window failure counts per bind name, bounded in memory."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_names: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._max_names = max_names
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Least recently failed first, so the oldest names go when the map is full.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, name: str) -> bool:
        """Whether this name has used up its failures for now."""
        key, now = name_key(name), self._monotonic()
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                return False
            self._expire(times, now)
            if not times:
                del self._failures[key]
                return False
            return len(times) >= self._limit

    def failed(self, name: str) -> None:
        key, now = name_key(name), self._monotonic()
        with self._lock:
            times = self._failures.setdefault(key, deque())
            self._failures.move_to_end(key)
            self._expire(times, now)
            times.append(now)
            while len(times) > self._limit:
                times.popleft()
            while len(self._failures) > self._max_names:
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name_key(name), None)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()
