"""Bind records from memory: `jit.lookup` without the store while nothing changed (issue 17).

A bind reads one record (`store.users.bind_record`). This process keeps the records it read,
and drops a user's as soon as anything changes it, whoever writes: database triggers log every
change of a bind column and every failed bind of a user in `user_changes` (`store.changes`),
and this module follows that log.

- SQLite: before any answer from memory, `PRAGMA data_version` on a connection of its own
  tells whether any other connection committed; if so, the log rows after the last one seen
  name the users to drop. Writers are serialised, so the log's order is the commit order:
  exact for every process and every writer. A reader that fell behind the trimmed log starts
  afresh (the whole memory dropped). This process's own commits are told apart exactly: a
  writing transaction holds the write lock, so the log rows after the last committed one
  (read on the cache's connection by a commit hook) are its own.
- PostgreSQL: a listener thread on a connection of its own (LISTEN `store.changes.CHANNEL`)
  drops each notified user; it pings the server four times a second, and memory answers only
  while the listener was heard within `MAX_LAG_SECONDS`: a lost or silent listener means every
  lookup reads the store, and a new one starts afresh. This process's own commits drop their
  users synchronously (a commit hook of `Store.writing()` reads the transaction's log rows),
  so a write of this process decides the very next bind.

What is kept: only what the store returned with no failed bind counted (a user with recent
failures is read every time, so the failure limit holds across processes), never an absence,
never the result of checking a password. A read that raced with a change is not kept: every
drop is stamped with an epoch, and a read is kept only when its user was not dropped after
the read began. What a committed sync of this process wrote is kept too (`remember`), unless
another writer's change of that user was heard while the commit was being made.

Thread-safe: the event loop and the worker threads call it together.
"""

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import Connection

from gateway.auth.jit import NO_FAILURES, BindKey, CachedUser, bind_key, read_bind_record
from gateway.auth.routing import Subject
from gateway.users.names import dn_key, name_key
from store import changes
from store.db import Store

log = logging.getLogger(__name__)

#: Memory answers on PostgreSQL only while the listener was heard this recently.
MAX_LAG_SECONDS = 0.75
#: How long the listener waits for notifications before it pings the server.
PING_SECONDS = 0.25
#: Seconds before the listener connects again after losing its connection.
RECONNECT_SECONDS = 0.5
#: The listener's application_name (pg_stat_activity), with the process id.
LISTENER_NAME = "idgate-bindcache"
#: Keys kept at most; the oldest goes first past this.
MAX_KEYS = 200_000
#: Dropped ids remembered for the read race at most; past this, reads in flight are not kept.
MAX_DROPPED = 50_000

_BEGINNING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Entry:
    user: CachedUser
    #: The record counted no failure after this time (`lookup`'s `failures_since`).
    since: datetime


class BindRecords:
    """The bind records of this process, from memory while the store says they are current.

    Args:
        store: the store the records come from (SQLite file or PostgreSQL).
        monotonic: the clock of the listener's heartbeat (tests).
    """

    def __init__(self, store: Store, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: dict[BindKey, _Entry] = {}
        self._keys: dict[str, set[BindKey]] = {}
        # Every drop is stamped with a new epoch; a read started at epoch e is kept only when
        # its user was not dropped after e (`_dropped`) and nothing was cleared after (`_floor`).
        self._epoch = 0
        self._floor = 0
        self._dropped: dict[str, int] = {}
        # Users whose last drop was this process's own commit, with the since of the record
        # that commit dropped: `remember` may keep what that commit wrote.
        self._rememberable: dict[str, datetime] = {}
        self._closed = threading.Event()
        self._remove_hook: Callable[[], None] = lambda: None
        self._sqlite: sqlite3.Connection | None = None
        self._data_version = 0
        self._last_seq = 0
        #: Log rows of this process's own commits, dropped already by the commit hook.
        self._own_seqs: set[int] = set()
        self._listener: threading.Thread | None = None
        self._heard = float("-inf")
        # PostgreSQL transactions of this process whose notifications are its own: the
        # commit hook dropped their users already. txid -> when committed (monotonic).
        self._own_txids: dict[int, float] = {}
        if store.dialect == "sqlite":
            self._open_sqlite()
        elif store.dialect == "postgresql":
            self._remove_hook = store.add_commit_hook(self._before_commit)
            self._listener = threading.Thread(
                target=self._listen, name="idgate-bindcache", daemon=True
            )
            self._listener.start()

    # -- the interface -------------------------------------------------------------------------

    def cached(
        self, subject: Subject, *, failures_since: datetime | None = None
    ) -> CachedUser | None:
        """The record from memory, or None when memory holds no valid copy. Never reads the
        store (on SQLite: one `PRAGMA data_version` and, after a commit, the new log rows)."""
        key = bind_key(subject)
        with self._lock:
            if not self._current():
                return None
            entry = self._entries.get(key)
        if entry is None or (failures_since is not None and failures_since < entry.since):
            return None
        return entry.user

    def lookup(
        self, subject: Subject, *, failures_since: datetime = NO_FAILURES
    ) -> CachedUser | None:
        """`gateway.auth.jit.lookup`: the stored record a bind name designates in its source,
        with its failed binds after `failures_since`; from memory when it holds a valid copy.
        Blocking (a store read on a miss)."""
        key = bind_key(subject)
        with self._lock:
            current = self._current()
            if current:
                entry = self._entries.get(key)
                if entry is not None and failures_since >= entry.since:
                    return entry.user
            began = self._epoch
        user = read_bind_record(self._store, key, failures_since=failures_since)
        if user is None:
            return None
        if current and user.recent_failures == 0:
            with self._lock:
                if began >= self._floor and self._dropped.get(user.id, 0) <= began:
                    self._keep(key, _Entry(user, failures_since))
        return user

    def remember(self, user: CachedUser) -> None:
        """Keep a record this process has just written and committed (after a JIT sync).

        Kept only when the cache can tell it is current: this process's commit was the last
        change of that user (any later change, from any writer, has dropped it again), and
        the record counted no failure (`user.recent_failures`, as read before the write).
        Otherwise a no-op: the next lookup reads the store."""
        if user.recent_failures:
            return
        with self._lock:
            since = self._rememberable.pop(user.id, None)
            if since is None or not self._current():
                return
            source_id = user.source_id
            self._keep((source_id, "user_name", name_key(user.user_name)), _Entry(user, since))
            if user.dn:
                self._keep((source_id, "dn", dn_key(user.dn)), _Entry(user, since))

    def wait_ready(self, timeout: float) -> bool:
        """Wait until memory may answer (PostgreSQL: the listener listens); whether it may."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._sqlite is not None or self._current():
                    return True
            if time.monotonic() >= deadline or self._closed.is_set():
                return False
            time.sleep(0.01)

    def close(self) -> None:
        """Stop the listener and close this cache's own connection."""
        self._closed.set()
        self._remove_hook()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._lock:
            self._clear()
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None

    def __len__(self) -> int:
        """Records held (tests, metrics)."""
        return len(self._keys)

    # -- memory (call with the lock held) ----------------------------------------------------

    def _keep(self, key: BindKey, entry: _Entry) -> None:
        held = self._entries.get(key)
        if held is not None and held.user.id != entry.user.id:
            self._unkey(held.user.id, key)
        if len(self._entries) >= MAX_KEYS and key not in self._entries:
            oldest = next(iter(self._entries))
            self._unkey(self._entries.pop(oldest).user.id, oldest)
        self._entries[key] = entry
        self._keys.setdefault(entry.user.id, set()).add(key)

    def _unkey(self, user_id: str, key: BindKey) -> None:
        keys = self._keys.get(user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[user_id]

    def _drop(self, user_ids: list[str], *, own: bool = False) -> None:
        self._epoch += 1
        if len(self._dropped) + len(user_ids) > MAX_DROPPED:
            # Forget the stamps; no read in flight can be kept now (it may have raced).
            self._dropped.clear()
            self._floor = self._epoch
        for user_id in user_ids:
            self._dropped[user_id] = self._epoch
            since = None
            for key in self._keys.pop(user_id, ()):
                entry = self._entries.pop(key)
                since = entry.since if since is None else max(since, entry.since)
            if own:
                # What this process wrote may be kept (`remember`); a user it held keeps
                # the failure window it was read with, a user it did not hold (just added
                # by a JIT sync, say) counts failures from the start.
                self._rememberable[user_id] = _BEGINNING if since is None else since
            else:
                self._rememberable.pop(user_id, None)

    def _drop_own(self, user_ids: list[str], began: int) -> None:
        """Drop what a commit of this process changed. A user that another writer changed
        since the commit was about to be made (`began`) is not rememberable: what this
        process wrote may be older than that change (the other commit came between this
        one and its hook, or was heard first)."""
        raced = [u for u in user_ids if self._dropped.get(u, 0) > began or began < self._floor]
        self._drop(raced)
        self._drop([u for u in user_ids if u not in raced], own=True)

    def _clear(self) -> None:
        self._epoch += 1
        self._floor = self._epoch
        self._entries.clear()
        self._keys.clear()
        self._dropped.clear()
        self._rememberable.clear()

    def _current(self) -> bool:
        """Whether memory may answer now; on SQLite, after applying the log's new rows."""
        if self._sqlite is not None:
            self._follow_sqlite()
            return True
        return self._monotonic() - self._heard <= MAX_LAG_SECONDS

    # -- SQLite ----------------------------------------------------------------------------

    def _open_sqlite(self) -> None:
        path = self._store.engine.url.database
        if not path or path == ":memory:":
            return  # a private in-memory database: nothing to share, memory never answers
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA query_only=ON")
        connection.execute("PRAGMA busy_timeout=10000")
        self._data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        self._last_seq = connection.execute(changes.SQLITE_LAST_SEQ).fetchone()[0]
        self._sqlite = connection
        self._remove_hook = self._store.add_commit_hook(self._before_sqlite_commit)

    def _before_sqlite_commit(self, connection: Connection) -> Callable[[], None] | None:
        """This process's own commits, told apart exactly: the writing transaction holds
        SQLite's write lock, so the log rows after the last committed one are its own."""
        with self._lock:
            if self._sqlite is None:
                return None
            committed = self._sqlite.execute(changes.SQLITE_LAST_SEQ).fetchone()[0]
            began = self._epoch
        own = changes.sqlite_own_changes(connection, committed)
        if not own:
            return None

        def after() -> None:
            with self._lock:
                # The follower reads these rows later: they are dropped once, here.
                self._own_seqs.update(seq for seq, _ in own)
                self._drop_own([user_id for _, user_id in own], began)

        return after

    def _follow_sqlite(self) -> None:
        assert self._sqlite is not None
        # data_version moves when another connection committed (own commits of this
        # connection would not move it; it never writes).
        version = self._sqlite.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        rows = self._sqlite.execute(changes.SQLITE_CHANGES_AFTER, (self._last_seq,)).fetchall()
        if not rows:
            return
        if rows[0][0] > self._last_seq + 1:
            # The triggers trimmed rows this reader had not seen yet.
            log.info("bindcache: fell behind the change log; starting afresh")
            self._clear()
        else:
            others = [user_id for seq, user_id in rows if seq not in self._own_seqs]
            self._own_seqs.difference_update(seq for seq, _ in rows)
            if others:
                self._drop(others)
        self._last_seq = rows[-1][0]

    # -- PostgreSQL ------------------------------------------------------------------------

    def _before_commit(self, connection: Connection) -> Callable[[], None] | None:
        txid, user_ids = changes.own_changes(connection)
        if txid is None:
            return None
        with self._lock:
            # Registered before the commit: the listener may hear it before `after` runs.
            self._own_txids[txid] = self._monotonic()
            began = self._epoch

        def after() -> None:
            with self._lock:
                self._drop_own(user_ids, began)

        return after

    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                self._listen_once()
            except psycopg.Error as exc:
                if not self._closed.is_set():
                    log.warning("bindcache: change listener lost its connection: %s", exc)
            finally:
                with self._lock:
                    self._heard = float("-inf")
            self._closed.wait(RECONNECT_SECONDS)

    def _listen_once(self) -> None:
        engine = self._store.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.update(autocommit=True, keepalives=1, keepalives_idle=5, keepalives_interval=2)
        kwargs.setdefault("application_name", f"{LISTENER_NAME} {os.getpid()}")
        with psycopg.connect(*args, **kwargs) as connection:
            connection.execute(f"LISTEN {changes.CHANNEL}")
            with self._lock:
                # Whatever changed while no one listened is unknown: start afresh.
                self._clear()
                self._heard = self._monotonic()
            while not self._closed.is_set():
                for notice in connection.notifies(timeout=PING_SECONDS):
                    self._notified(notice.payload)
                pinged = self._monotonic()
                # Notifications committed before the ping come before its answer.
                connection.execute("SELECT 1")
                with self._lock:
                    self._heard = pinged
                    self._prune_txids(pinged)

    def _notified(self, payload: str) -> None:
        try:
            txid, user_id = changes.parse_notice(payload)
        except ValueError:
            log.warning("bindcache: unexpected notification %r", payload)
            with self._lock:
                self._clear()
            return
        with self._lock:
            if txid not in self._own_txids:
                self._drop([user_id])

    def _prune_txids(self, now: float) -> None:
        if len(self._own_txids) > 1000:
            old = now - 60
            self._own_txids = {t: at for t, at in self._own_txids.items() if at > old}
