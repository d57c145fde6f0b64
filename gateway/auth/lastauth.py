"""`last_auth_at` without a database commit per bind (the daily refresh and cleanup read it).

Successful binds are noted in memory and written in one transaction per flush interval by a
background thread; `close()` writes what is left. A crash loses at most one interval of
timestamps, which only makes a user look idle a little longer.
"""

import logging
import threading
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from store import users as queries
from store.db import Store

log = logging.getLogger(__name__)


class LastAuthRecorder:
    def __init__(self, store: Store, *, interval_seconds: float = 2.0) -> None:
        self._store = store
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idgate-last-auth", daemon=True)
        self._thread.start()

    def record(self, user_id: str, at: datetime) -> None:
        with self._lock:
            previous = self._pending.get(user_id)
            if previous is None or previous < at:
                self._pending[user_id] = at

    def flush(self) -> int:
        """Write what is pending now; returns how many users were written."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with self._store.writing() as session:
                queries.record_authentications(session, batch)
        except SQLAlchemyError:
            log.exception("could not record last authentication times; retrying next interval")
            with self._lock:
                for user_id, at in batch.items():
                    if self._pending.get(user_id, at) <= at:
                        self._pending[user_id] = at
            return 0
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)
        self.flush()
