"""A source's servers in order of preference, and which of them to try now (SPEC §2).

Servers are tried in the configured order. One that cannot be reached (refused, no answer,
TLS failure) is *cooling down* for `cooldown_seconds`: later connections go straight to the
next server instead of waiting for the same timeout again. Once the cool-down has passed the
server is preferred again, so failover is not sticky: the first server gets its traffic back
at most one cool-down after it returns. When every server is cooling down, all are tried
anyway, in order: a total outage ends as soon as any server answers.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ServerAddress", "ServerList"]

_DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}


@dataclass(frozen=True)
class ServerAddress:
    url: str
    host: str
    port: int
    use_ssl: bool

    @classmethod
    def parse(cls, url: str) -> "ServerAddress":
        """Read an ``ldap://`` or ``ldaps://`` URL (already validated by the configuration).

        Raises:
            ValueError: another scheme, or no host.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("not an ldap:// or ldaps:// URL with a host")
        return cls(
            url=url,
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[scheme],
            use_ssl=scheme == "ldaps",
        )


class ServerList:
    """Thread-safe order of preference over a fixed list of servers."""

    def __init__(
        self,
        addresses: tuple[ServerAddress, ...],
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not addresses:
            raise ValueError("at least one server is needed")
        self.addresses = addresses
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._down_until = [0.0] * len(addresses)
        self._failing = [False] * len(addresses)
        self._lock = threading.Lock()

    def candidates(self) -> list[int]:
        """Indexes to try, in order: servers not cooling down, then those that are."""
        with self._lock:
            now = self._clock()
            ready = [i for i, until in enumerate(self._down_until) if until <= now]
            cooling = [i for i, until in enumerate(self._down_until) if until > now]
        return ready + cooling

    def mark_down(self, index: int) -> bool:
        """Start (or restart) a cool-down; True if the server was working until now."""
        with self._lock:
            self._down_until[index] = self._clock() + self._cooldown
            was_working = not self._failing[index]
            self._failing[index] = True
            return was_working

    def mark_up(self, index: int) -> bool:
        """The server answered: end its cool-down; True if it had failed before."""
        with self._lock:
            self._down_until[index] = 0.0
            had_failed = self._failing[index]
            self._failing[index] = False
            return had_failed

    def better_than(self, index: int) -> bool:
        """Whether a server earlier in the list than `index` is not cooling down, so a
        connection to `index` should make way for one to it."""
        with self._lock:
            now = self._clock()
            return any(until <= now for until in self._down_until[:index])
