"""The JIT sync's small writes, committed in groups by one writer (issue 17).

A JIT-due bind writes twice around its upstream read: the claim of the user's window before
(SPEC §5.1: one read per user per window, across processes) and, for most reads, which find
the user as the store has it, the mark after: `last_sync_at` (the window restarts) and the
claim given back. `JitWrites` takes both from every bind of the process and commits whatever
has queued up while its previous commit ran in one transaction (group commit): under load one
commit carries many binds, and an idle process commits each write at once, with no delay.

- `claim` waits for its commit (the read may only start once the window is this process's);
  the claims of one transaction run as the conditional UPDATE each would run alone, in user
  order, so exactly one claimer of a user wins whoever batches them. A transaction the store
  refuses fails each of its claims with the store's error, as each would have failed alone.
- `mark` does not wait: the bind is answered before its mark commits, since the mark
  changes no verdict. A mark lost to a crash or a store error only leaves the user's claim to
  run out (`JitSync._claim_until`) and the old `last_sync_at`: the next bind reads upstream
  again; no status change is ever lost.
"""

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from store import users as queries
from store.db import Store

__all__ = ["JitWrites"]

log = logging.getLogger(__name__)

#: Writes one transaction carries at most (a bound on its statements and its lock time).
MOST_PER_COMMIT = 500

_Mark = tuple[str, datetime]


@dataclass
class _Claim:
    user_id: str
    now: datetime
    synced_before: datetime
    until: datetime
    done: threading.Event = field(default_factory=threading.Event)
    won: bool = False
    error: BaseException | None = None


class JitWrites:
    """`claim(...)` and `mark(...)`; one thread commits them in groups. Thread-safe."""

    def __init__(self, store: Store, *, most: int = MOST_PER_COMMIT) -> None:
        self._store = store
        self._most = most
        self._queue: queue.SimpleQueue[_Mark | _Claim | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Commits made and marks they carried (for the benchmark's report and tests).
        self.commits = 0
        self.marks = 0

    def claim(
        self, user_id: str, *, now: datetime, synced_before: datetime, until: datetime
    ) -> bool:
        """`store.users.claim_sync_window`, committed with whatever else is queued; blocks
        until it is committed.

        Raises:
            SQLAlchemyError: the store could not take the claim (as the claim alone raises).
        """
        self._start()
        claim = _Claim(user_id, now, synced_before, until)
        self._queue.put(claim)
        claim.done.wait()
        if claim.error is not None:
            raise claim.error
        return claim.won

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
                    target=self._run, name="idgate-jit-writes", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            marks: list[_Mark] = []
            claims: list[_Claim] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            # Everything that queued while the last commit ran goes in this one.
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                elif isinstance(item, _Claim):
                    claims.append(item)
                else:
                    marks.append(item)
                if len(marks) + len(claims) >= self._most:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                refused = self._write(marks, claims)
                if refused is not None:
                    claims += self._refuse_queued(refused)
            finally:
                for claim in claims:
                    claim.done.set()
                for waiter in waiters:
                    waiter.set()

    def _refuse_queued(self, error: SQLAlchemyError) -> list["_Claim"]:
        """The claims that queued while a refused commit waited for the store waited for the
        same store: they fail with its error now, as they would have failed alone, instead of
        waiting for it as long again. Marks and the rest queue up again."""
        refused: list[_Claim] = []
        others: list[_Mark | threading.Event | None] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Claim):
                item.error = error
                refused.append(item)
            else:
                others.append(item)
        for item in others:
            self._queue.put(item)
        return refused

    def _write(self, marks: Sequence[_Mark], claims: Sequence[_Claim]) -> SQLAlchemyError | None:
        """Commit `marks` and `claims` together; the store's error when it refused them."""
        if not marks and not claims:
            return None
        # In user order: two processes' transactions lock their users' rows alike.
        ordered = sorted(claims, key=lambda claim: claim.user_id)
        try:
            with self._store.writing() as session:
                if marks:
                    queries.mark_each_synced(session, marks)
                won = [self._claim(session, claim) for claim in ordered]
        except SQLAlchemyError as exc:
            # The marks' claims run out and those users are read again (module docstring).
            # Each claim fails as it would have alone (a locked or unavailable store: the
            # bind gets the front's "busy" or "unavailable"); none is retried, which would
            # make its bind wait for the store twice.
            if marks:
                log.warning("could not record %d JIT syncs: %s", len(marks), type(exc).__name__)
            for claim in ordered:
                claim.error = exc
            return exc
        for claim, result in zip(ordered, won, strict=True):
            claim.won = result
        self.commits += 1
        self.marks += len(marks)
        return None

    @staticmethod
    def _claim(session: Session, claim: _Claim) -> bool:
        return queries.claim_sync_window(
            session,
            claim.user_id,
            now=claim.now,
            synced_before=claim.synced_before,
            until=claim.until,
        )
