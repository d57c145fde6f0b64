"""JIT syncs that found nothing new, committed in groups by one writer (issue 17).

Most JIT re-reads find the user as the store has it: all they change is `last_sync_at` (the
window restarts, SPEC §5.1) and the claim they hold. `SyncMarks` takes those marks from every
bind of the process and writes whatever has queued up while the previous write ran in one
transaction (group commit): under load one commit carries many binds, and an idle process
commits each mark at once, without a lingering delay.

The bind is answered before its mark commits: the mark changes no verdict. A mark lost to a
crash or a store error only leaves the user's claim to run out (`JitSync._claim_until`) and
the old `last_sync_at`: the next bind reads upstream again, never misses a status change.
"""

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from store import users as queries
from store.db import Store

__all__ = ["SyncMarks"]

log = logging.getLogger(__name__)

#: Marks one transaction writes at most (a bound on its statement and its lock time).
MOST_PER_COMMIT = 500

_Mark = tuple[str, datetime]


class SyncMarks:
    """`mark(user_id, at)` queues a mark; one thread commits them in groups. Thread-safe."""

    def __init__(self, store: Store, *, most: int = MOST_PER_COMMIT) -> None:
        self._store = store
        self._most = most
        self._queue: queue.SimpleQueue[_Mark | threading.Event | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Commits made and marks they carried (for the benchmark's report and tests).
        self.commits = 0
        self.marks = 0

    def mark(self, user_id: str, at: datetime) -> None:
        """Record that `user_id` was synced at `at` and found unchanged; its claim ends."""
        self._start()
        self._queue.put((user_id, at))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every mark queued before this call is committed (or failed)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="idgate-jit-marks", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Mark] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            # Everything that queued while the last commit ran goes in this one.
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self._most:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)
            for waiter in waiters:
                waiter.set()

    def _write(self, batch: Sequence[_Mark]) -> None:
        if not batch:
            return
        try:
            with self._store.writing() as session:
                queries.mark_each_synced(session, batch)
        except SQLAlchemyError as exc:
            # The claims run out and the next binds read again (see the module docstring).
            log.warning("could not record %d JIT syncs: %s", len(batch), type(exc).__name__)
            return
        self.commits += 1
        self.marks += len(batch)
