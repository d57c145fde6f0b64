"""Readiness: can this process serve? (the store answers, and its schema is this code's)."""

from dataclasses import dataclass

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


class Readiness:
    def __init__(self, store: Store) -> None:
        self._store = store

    def check(self) -> list[Check]:
        """Run the readiness checks (blocking: call from a worker thread)."""
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
