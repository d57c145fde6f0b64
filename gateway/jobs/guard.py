"""The mass-disable guard of bulk runs and refresh batches (SPEC §5.3), around the pure verdict
of `gateway.engine.guard`.

A run collects, instead of applying, every disable it would make: users the source now
reports disabled or expired (`UserService.apply_batch(defer_disables=True)` leaves them
unwritten) and users it found gone. Once it knows them all, `Disables.settle` measures them
against the source's active users: within the thresholds they are applied, page by page, as
they would have been; beyond them none is, and the whole list is kept with the job
(`Progress.hold`), which ends `held` until a super admin confirms (`ReleaseHolds`) or
discards it.
"""

import logging
from collections.abc import Sequence
from datetime import datetime

from gateway.engine.guard import DisableLimits, held_because
from gateway.engine.plan import Outcome, SourceUser
from gateway.engine.types import SourceStatus, Trigger
from gateway.jobs.service import JobKind, Progress
from gateway.users.service import SyncResult, UserService
from store import jobs as job_queries
from store.db import Store

__all__ = ["Disables", "ReleaseHolds"]

log = logging.getLogger(__name__)

#: Users per transaction when applying or releasing disables.
PAGE = 500


class Disables:
    """The disables one run holds back until it knows how many it would make."""

    def __init__(
        self,
        source_id: str,
        users: UserService,
        store: Store,
        limits: DisableLimits,
        trigger: Trigger,
    ) -> None:
        self._source_id = source_id
        self._users = users
        self._store = store
        self._limits = limits
        self._trigger = trigger
        #: (user id, report) of users the source reports disabled or expired.
        self._reported: list[tuple[str, SourceUser]] = []
        #: (user id, external id, user name) of active users the source no longer has.
        self._missing: list[tuple[str, str, str]] = []

    def defer(self, reports: Sequence[SourceUser], results: Sequence[SyncResult]) -> None:
        """Keep the reports of a page that `apply_batch` deferred."""
        for report, result in zip(reports, results, strict=True):
            if result.outcome is Outcome.DEFERRED and result.user_id is not None:
                self._reported.append((result.user_id, report))

    def missing(self, user_id: str, external_id: str, user_name: str) -> None:
        """An active user the run found gone."""
        self._missing.append((user_id, external_id, user_name))

    @property
    def count(self) -> int:
        return len(self._reported) + len(self._missing)

    def settle(self, progress: Progress) -> bool:
        """Apply the collected disables, or hold them all for a super admin.

        Returns:
            False when the job was asked to stop meanwhile (what was applied stays).
        """
        if not self.count:
            return True
        with self._store.reading() as session:
            active = job_queries.count_active(session, self._source_id)
        reason = held_because(self.count, active, self._limits)
        if reason is not None:
            log.warning("job %d (%s) held: %s", progress.job_id, self._source_id, reason)
            rows = [
                (user_id, report.external_id, report.user_name, report.status.value)
                for user_id, report in self._reported
            ] + [
                (user_id, external_id, user_name, SourceStatus.MISSING.value)
                for user_id, external_id, user_name in self._missing
            ]
            progress.hold(f"{reason}; nobody was disabled: confirm or discard the list", rows)
            return True
        for start in range(0, len(self._reported), PAGE):
            if progress.stopping():
                return False
            page = self._reported[start : start + PAGE]
            reports = [report for _, report in page]
            names = [(report.user_name, report.external_id) for report in reports]
            with self._store.writing() as session:
                results = self._users.apply_batch(
                    session,
                    self._source_id,
                    reports,
                    self._trigger,
                    seen_in_job=progress.job_id if self._trigger is Trigger.BULK else None,
                )
                progress.record(session, results, names)
        for start in range(0, len(self._missing), PAGE):
            if progress.stopping():
                return False
            gone = self._missing[start : start + PAGE]
            names = [(user_name, external_id) for _, external_id, user_name in gone]
            with self._store.writing() as session:
                external_ids = [external_id for _, external_id, _ in gone]
                results = self._users.apply_missing_batch(
                    session, self._source_id, external_ids, self._trigger
                )
                progress.record(session, results, names)
        return True


class ReleaseHolds:
    """The work of a held job a super admin confirmed: disable exactly the users it holds."""

    def __init__(self, users: UserService, store: Store, read_before: datetime) -> None:
        """
        Args:
            read_before: when the held run ended; users synced since are left alone.
        """
        self._users = users
        self._store = store
        self._read_before = read_before

    def __call__(self, progress: Progress) -> bool:
        assert progress.source_id is not None
        trigger = Trigger.BULK if progress.kind is JobKind.BULK else Trigger.REFRESH
        after = 0
        while True:
            if progress.stopping():
                return False
            with self._store.reading() as session:
                rows = job_queries.holds(session, progress.job_id, after, PAGE)
            if not rows:
                break
            after = rows[-1].id
            names = [(row.user_name, row.external_id) for row in rows]
            with self._store.writing() as session:
                results = self._users.apply_held(
                    session,
                    progress.source_id,
                    [(row.user_id, SourceStatus(row.source_status)) for row in rows],
                    trigger,
                    read_before=self._read_before,
                )
                progress.record(session, results, names)
        with self._store.writing() as session:
            job_queries.drop_holds(session, progress.job_id)
        return True
