"""Queries and writes on groups and their members. Every function takes the caller's Session
and never commits."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from store.models import Group, GroupMember, User


def get_group(session: Session, group_id: str, *, for_update: bool = False) -> Group | None:
    query = select(Group).where(Group.id == group_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def find_by_name_key(session: Session, source_id: str, name_key: str) -> Group | None:
    query = select(Group).where(Group.source_id == source_id, Group.display_name_key == name_key)
    return session.scalars(query).one_or_none()


def members_of(
    session: Session, group_ids: Sequence[str], *, hidden_status: str
) -> dict[str, list[tuple[str, str | None]]]:
    """The (user id, display) members of each group, in userName order, in one query.

    Users whose source status is `hidden_status` (deleted by their source, pending deletion)
    are left out: they are no longer members as far as the source can see.
    """
    found: dict[str, list[tuple[str, str | None]]] = {group_id: [] for group_id in group_ids}
    if not group_ids:
        return found
    rows = session.execute(
        select(GroupMember.group_id, User.id, GroupMember.display)
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id.in_(group_ids), User.source_status != hidden_status)
        .order_by(User.user_name_key)
    )
    for group_id, user_id, display in rows:
        found[group_id].append((user_id, display))
    return found


def groups_of(session: Session, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """The (group id, displayName) groups of each user, in one query."""
    found: dict[str, list[tuple[str, str]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return found
    rows = session.execute(
        select(GroupMember.user_id, Group.id, Group.display_name)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id.in_(user_ids))
        .order_by(Group.display_name_key)
    )
    for user_id, group_id, display_name in rows:
        found[user_id].append((group_id, display_name))
    return found


def existing_users(
    session: Session, source_id: str, user_ids: Iterable[str], hidden: str
) -> set[str]:
    """Which of `user_ids` are users of this source that the source can see."""
    wanted = set(user_ids)
    if not wanted:
        return set()
    query = select(User.id).where(
        User.id.in_(wanted), User.source_id == source_id, User.source_status != hidden
    )
    return set(session.scalars(query))


def set_members(
    session: Session, group_id: str, members: Mapping[str, str | None]
) -> tuple[int, int]:
    """Make exactly `members` (user id -> display) the group's members.

    Returns:
        How many members were added and removed (a changed display counts as neither).
    """
    stored = session.execute(
        select(GroupMember.user_id, GroupMember.display).where(GroupMember.group_id == group_id)
    )
    current: dict[str, str | None] = {user_id: display for user_id, display in stored}
    removed = set(current) - set(members)
    added = set(members) - set(current)
    if removed:
        session.execute(
            delete(GroupMember).where(
                GroupMember.group_id == group_id, GroupMember.user_id.in_(removed)
            )
        )
    if added:
        rows: list[dict[str, Any]] = [
            {"group_id": group_id, "user_id": u, "display": members[u]} for u in sorted(added)
        ]
        session.execute(insert(GroupMember), rows)
    for user_id in set(members) & set(current):
        if members[user_id] != current[user_id]:
            session.execute(
                update(GroupMember)
                .where(GroupMember.group_id == group_id, GroupMember.user_id == user_id)
                .values(display=members[user_id])
            )
    return len(added), len(removed)


def leave_all_groups(session: Session, user_id: str) -> int:
    """Take a user out of every group. Returns how many memberships it had."""
    result = session.execute(
        delete(GroupMember)
        .where(GroupMember.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
