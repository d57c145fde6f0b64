"""Readiness: can this process serve? (the store answers, and its schema is this code's).

Each directory source is listed too, with when one of its servers last answered this
process, but does not decide readiness: a process whose directory is down still serves
(binds are refused with "directory unavailable" from cached records, SCIM and the admin API
work), and every process of a deployment shares the same directories, so taking them out of
a load balancer for it would take the whole service down instead of degrading it.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from store.db import Store
from store.errors import SchemaOutOfDate
from store.migrate import check_schema


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Whether `ok` decides readiness (the directories' checks only inform).
    decides: bool = True


class DirectoryWatch:
    """When each directory source last answered this process, and last failed; thread-safe."""

    def __init__(
        self,
        sources: Sequence[str],
        clock: Callable[[], datetime],
        on_answer: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self._sources = tuple(sources)
        self._clock = clock
        self._on_answer = on_answer
        self._answered: dict[str, datetime] = {}
        self._failed: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def observe(self, source: str, failed: bool) -> None:
        """An operation on `source` ended: answered, or no server answered (`failed`)."""
        now = self._clock()
        with self._lock:
            (self._failed if failed else self._answered)[source] = now
        if not failed and self._on_answer is not None:
            self._on_answer(source, now)

    def checks(self) -> list[Check]:
        with self._lock:
            answered, failed = dict(self._answered), dict(self._failed)
        checks = []
        for source in self._sources:
            last, failure = answered.get(source), failed.get(source)
            if last is None and failure is None:
                checks.append(Check(f"directory {source}", True, "not asked yet", False))
                continue
            ok = last is not None and (failure is None or last >= failure)
            parts = [f"last answered at {last.isoformat()}" if last else "never answered"]
            if failure is not None and not ok:
                parts.insert(0, f"failing since {failure.isoformat()}")
            checks.append(Check(f"directory {source}", ok, "; ".join(parts), False))
        return checks


class Readiness:
    def __init__(self, store: Store, directories: DirectoryWatch | None = None) -> None:
        self._store = store
        self._directories = directories

    def check(self) -> list[Check]:
        """Run the readiness checks (blocking: call from a worker thread)."""
        checks = self._store_checks()
        if self._directories is not None:
            checks += self._directories.checks()
        return checks

    def _store_checks(self) -> list[Check]:
        try:
            with self._store.reading() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            # The driver's message can hold the host; never the password (URLs are not logged).
            return [Check("store", False, f"store unreachable: {type(exc).__name__}")]
        try:
            check_schema(self._store.engine)
        except SchemaOutOfDate as exc:
            return [Check("store", True, "reachable"), Check("schema", False, str(exc))]
        return [Check("store", True, "reachable"), Check("schema", True, "at head")]
