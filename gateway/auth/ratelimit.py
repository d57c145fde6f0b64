"""Repeated failed binds of one name are refused before they reach the directory (SPEC §6).

RADIUS servers retransmit, and a client with a stale password retries forever; forwarding
every attempt would lock the account upstream (AD lockout, ppolicy pwdMaxFailure). After
`limit` failures within `window` seconds a name is refused locally until the oldest failure
ages out.

The failures are counted in the store, where every gateway process sees them: N gateways
behind a load balancer would otherwise let N times as many wrong passwords through, exactly
the lockout amplification the limit exists to stop. A bind of a stored user costs one index
probe, made in the same query that reads its record (`tally`); a name without a record costs
one read (`check`). Only a *failed* bind writes (one row), and a success writes only when
it clears failures. A refusal of a name already over its limit writes nothing, so a flood
against one name costs the store reads, not writes.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from gateway.users.names import name_key
from store import failures as queries
from store.db import Store
from store.models import AuditEvent

log = logging.getLogger(__name__)

#: How often one process sweeps failures older than the window out of the store.
_SWEEP_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Tally:
    """What `check` found for one name: its recent failures, and whether they block it."""

    key: str
    failures: int
    blocked: bool


class FailureLimiter:
    """Sliding-window failure counts per name, shared through the store. Thread-safe."""

    def __init__(
        self,
        store: Store,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._limit = limit
        self._window = timedelta(seconds=window_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._swept_at: datetime | None = None

    @property
    def limit(self) -> int:
        return self._limit

    def check(self, name: str) -> Tally:
        """The failures of `name` within the window (raises the store's errors: a bind
        without this answer would either skip the limit or refuse everyone)."""
        key = name_key(name)
        with self._store.core_connection() as connection:
            count = queries.recent_failures(connection, key, self.since())
        return Tally(key, count, count >= self._limit)

    def since(self) -> datetime:
        """Failures after this instant count (`check`; a record's own, read with it)."""
        return self._clock() - self._window

    def tally(self, name: str, failures: int) -> Tally:
        """The `Tally` of `name` from a count read elsewhere, after `since()` (the bind
        record's, read in the same round trip as the record)."""
        return Tally(name_key(name), failures, failures >= self._limit)

    def failed(self, name: str, *, audit: AuditEvent | None = None) -> None:
        """Count one failure of `name`, and write `audit` in the same unit of work.

        A store that cannot take the write is logged, not raised: the bind is refused
        anyway, and a lost count only lets one more try through.
        """
        key, now = name_key(name), self._clock()
        try:
            with self._store.writing() as session:
                queries.add_failure(session, key, now)
                if audit is not None:
                    session.add(audit)
        except SQLAlchemyError as exc:
            log.warning("could not count a failed bind: %s", type(exc).__name__)
            return
        self._sweep(now)

    def succeeded(self, tally: Tally) -> None:
        """A success clears the name's failures; nothing is written when it had none."""
        if tally.failures == 0:
            return
        try:
            with self._store.writing() as session:
                queries.clear_failures(session, tally.key)
        except SQLAlchemyError as exc:
            log.warning("could not clear failed binds: %s", type(exc).__name__)

    def _sweep(self, now: datetime) -> None:
        """At most once a minute per process: failures older than the window count for
        nothing, and a name that never fails again would otherwise keep its rows."""
        with self._lock:
            if self._swept_at is not None and now - self._swept_at < _SWEEP_EVERY:
                return
            self._swept_at = now
        try:
            with self._store.writing() as session:
                queries.sweep_failures(session, now - self._window)
        except SQLAlchemyError as exc:
            log.warning("could not sweep old failed binds: %s", type(exc).__name__)
