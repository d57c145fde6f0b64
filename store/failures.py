"""Failed binds, counted across every gateway process sharing the store (`AuthFailure`)."""

from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.models import AuthFailure


def recent_failures(connection: Connection, key: str, since: datetime) -> int:
    """How many failures `key` has after `since` (one indexed range read)."""
    statement = select(func.count()).where(AuthFailure.key == key, AuthFailure.at > since)
    return int(connection.execute(statement).scalar_one())


def add_failure(session: Session, key: str, at: datetime) -> None:
    session.execute(insert(AuthFailure).values(key=key, at=at))


def clear_failures(session: Session, key: str) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.key == key))


def sweep_failures(session: Session, before: datetime) -> int:
    """Delete the failures at or before `before`; returns how many."""
    result = session.execute(delete(AuthFailure).where(AuthFailure.at <= before))
    return int(getattr(result, "rowcount", 0) or 0)
