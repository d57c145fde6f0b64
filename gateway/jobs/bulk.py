"""Bulk sync of one directory source (SPEC §5.3): the whole scope, page by page.

One thread reads the directory with Simple Paged Results (`Directory.read_scope`) and maps
each page to `SourceUser` values; the job's thread applies each page in one transaction
(`UserService.apply_batch`) with the page's counts and details. A bounded queue between them
keeps at most a few pages in memory whatever the directory's size, and lets the directory
and the store work at once.

- Only users whose source-owned data changed are written; the others are marked synced.
- New users past the source's `user_limit` are not added ("not synchronized, limit reached").
- Records of the source the run did not see are `missing` (SPEC §4.2) only after a read the
  directory proved complete (`ScopeRead.complete`: every root, every page, no limit hit). A
  read that ended any other way fails the job with the reason and its fix: what it read is
  applied (adds and updates), and nobody is disabled, neither missing nor reported disabled.
- Disables wait for the end of the read: the mass-disable guard (`gateway.jobs.guard`) applies
  them, or holds them all for a super admin when they are too many.
- The first page is read before anything is written: when no server answers the job fails
  at once with the connector's reason, and nothing changed.
"""

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from gateway.config import AdSource, LdapSource
from gateway.directory import DirectoryEntry, IncompleteEntry, to_source_user
from gateway.engine.guard import DisableLimits
from gateway.engine.plan import Outcome, SourceUser
from gateway.engine.types import Status, Trigger
from gateway.errors import IncompleteRead, UpstreamError
from gateway.jobs.guard import Disables
from gateway.jobs.service import Progress
from gateway.users.service import AddBudget, Clock, UserService
from store import jobs as job_queries
from store import users as user_queries
from store.db import Store

log = logging.getLogger(__name__)

#: Pages read ahead of the writer: enough to keep both sides busy, few enough to stay small.
READ_AHEAD = 2
#: Records per transaction in the missing pass.
MISSING_PAGE = 500
#: New records after which the store's statistics are refreshed (and whenever they double).
ANALYZE_AFTER = 5000


class ScopeReading(Protocol):
    """What `Directory.read_scope` returns: the entries, and whether the read was complete."""

    complete: bool

    def __iter__(self) -> Iterator[DirectoryEntry]: ...

    def close(self) -> None: ...


class PagedDirectory(Protocol):
    def read_scope(self, page_size: int | None = None) -> ScopeReading: ...


@dataclass(frozen=True)
class _Page:
    reports: list[SourceUser]
    #: Entries that could not be mapped: (DN, why).
    unusable: list[tuple[str, str]]


_DONE = object()


class BulkSync:
    """The work of one bulk job (a `gateway.jobs.service.Work`)."""

    def __init__(
        self,
        source: LdapSource | AdSource,
        directory: PagedDirectory,
        users: UserService,
        store: Store,
        *,
        clock: Clock,
        limits: DisableLimits,
    ) -> None:
        """
        Args:
            limits: the source's mass-disable thresholds.
        """
        self._source = source
        self._directory = directory
        self._users = users
        self._store = store
        self._clock = clock
        self._limits = limits

    def __call__(self, progress: Progress) -> bool:
        source_id = self._source.id
        with self._store.reading() as session:
            stored = job_queries.count_users(session, source_id)
        budget = AddBudget(max(0, self._source.user_limit - stored))
        disables = Disables(source_id, self._users, self._store, self._limits, Trigger.BULK)
        rows = analyzed = stored
        written = False
        pages: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD)
        halt = threading.Event()
        reader = threading.Thread(
            target=self._read,
            args=(pages, halt),
            name=f"idgate-job-{progress.job_id}-read",
            daemon=True,
        )
        reader.start()
        try:
            while True:
                item = pages.get()
                if item is _DONE:
                    break
                if isinstance(item, UpstreamError):
                    raise _failed_read(item, written)
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, _Page)
                rows += self._write(progress, item, budget, disables)
                written = True
                if rows >= max(2 * analyzed, analyzed + ANALYZE_AFTER):
                    # The planner must see the table grow, or every page of a first import
                    # scans all the users written so far (PostgreSQL, store.users).
                    with self._store.writing() as session:
                        user_queries.analyze_users(session)
                    analyzed = rows
                if progress.stopping():
                    return False
        finally:
            halt.set()
            _drain(pages)
            reader.join()
        return self._missing(progress, disables) and disables.settle(progress)

    def _read(self, pages: "queue.Queue[object]", halt: threading.Event) -> None:
        size = self._source.page_size
        batch: list[SourceUser] = []
        unusable: list[tuple[str, str]] = []
        entries = self._directory.read_scope(size)
        try:
            for entry in entries:
                try:
                    batch.append(to_source_user(entry, self._source, self._clock()))
                except IncompleteEntry as exc:
                    unusable.append((entry.dn, str(exc)))
                if len(batch) + len(unusable) >= size:
                    if not _put(pages, _Page(batch, unusable), halt):
                        return
                    batch, unusable = [], []
            if batch or unusable:
                _put(pages, _Page(batch, unusable), halt)
            if not entries.complete:
                # Defence in depth: a read ends without an error only when it is complete.
                raise UpstreamError(
                    f"source {self._source.id}: the read ended without proof that it was"
                    " complete; nobody was disabled"
                )
            _put(pages, _DONE, halt)
        except BaseException as exc:  # handed to the writer, which fails the job with it
            # What was read before the failure is real: written first (adds and updates).
            if (batch or unusable) and not _put(pages, _Page(batch, unusable), halt):
                return
            _put(pages, exc, halt)
        finally:
            entries.close()  # gives the connection back

    def _write(self, progress: Progress, page: _Page, budget: AddBudget, disables: Disables) -> int:
        names = [(r.user_name, r.external_id) for r in page.reports]
        # The page's counts commit with its writes: a job that dies counts what it wrote.
        with self._store.writing() as session:
            results = self._users.apply_batch(
                session,
                self._source.id,
                page.reports,
                Trigger.BULK,
                seen_in_job=progress.job_id,
                budget=budget,
                defer_disables=True,
            )
            progress.record(session, results, names, read=len(page.reports) + len(page.unusable))
            if page.unusable:
                details = [
                    ("not_synchronized", dn, None, reason)
                    for dn, reason in page.unusable
                    if progress.listed("not_synchronized")
                ]
                progress.count(session, details=details, not_synchronized=len(page.unusable))
        disables.defer(page.reports, results)
        return sum(1 for result in results if result.outcome is Outcome.ADDED)

    def _missing(self, progress: Progress, disables: Disables) -> bool:
        """Records the complete read did not see are gone from the source (SPEC §4.2).

        Active ones are disables, for the guard to settle; the others (disabled already)
        only learn that the source no longer has them, at once.
        """
        after = ""
        while True:
            if progress.stopping():
                return False
            with self._store.reading() as session:
                rows = job_queries.unseen_users(
                    session,
                    self._source.id,
                    progress.job_id,
                    progress.started_at,
                    after,
                    MISSING_PAGE,
                )
            if not rows:
                return True
            after = rows[-1][0]
            settled = []
            for user_id, external_id, user_name, status in rows:
                if status == Status.ACTIVE:
                    disables.missing(user_id, external_id, user_name)
                else:
                    settled.append((user_name, external_id))
            if not settled:
                continue
            with self._store.writing() as session:
                results = self._users.apply_missing_batch(
                    session,
                    self._source.id,
                    [external_id for _, external_id in settled],
                    Trigger.BULK,
                )
                progress.record(session, results, settled)


def _failed_read(error: UpstreamError, written: bool) -> UpstreamError:
    """The job's reason for a read that failed: the directory's reason, and what it left."""
    suffix = (
        "; the entries read before were applied (added and updated), and nobody was"
        " disabled or marked missing"
        if written
        else "; nothing was changed: nobody was disabled or marked missing"
    )
    if isinstance(error, IncompleteRead):
        failed: UpstreamError = IncompleteRead(
            f"{error}{suffix}", root=error.root, shortfall=error.shortfall, entries=error.entries
        )
    else:
        failed = type(error)(f"{error}{suffix}")
    failed.__cause__ = error
    return failed


def _put(pages: "queue.Queue[object]", item: object, halt: threading.Event) -> bool:
    """Hand an item to the writer; False when the writer has stopped taking them."""
    while not halt.is_set():
        try:
            pages.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(pages: "queue.Queue[object]") -> None:
    while True:
        try:
            pages.get_nowait()
        except queue.Empty:
            return
