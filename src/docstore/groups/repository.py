"""Group queries: memberships, and the owners whose items are shared with a group."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.groups.models import Group, GroupMember
from docstore.users.models import User


def locked(db: Session, group_id: int) -> Group | None:
    """The group row, locked until the transaction ends (membership changes and new shares
    to the group take this lock, so each sees the other's committed rows)."""
    return db.scalar(select(Group).where(Group.id == group_id).with_for_update())


def membership(db: Session, group_id: int, user_id: int) -> GroupMember | None:
    """The user's membership of the group, if any."""
    return db.get(GroupMember, (group_id, user_id))


def member_rows(db: Session, group_ids: Iterable[int]) -> list[tuple[GroupMember, User]]:
    """Every membership of these groups with its user, oldest membership first."""
    ids = list(group_ids)
    if not ids:
        return []
    stmt = (
        select(GroupMember, User)
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id.in_(ids))
        .order_by(GroupMember.added_at, GroupMember.user_id)
    )
    return [(m, u) for m, u in db.execute(stmt).all()]


def manager_count(db: Session, group_id: int) -> int:
    """How many managers the group has."""
    rows = db.scalars(
        select(GroupMember.user_id).where(
            GroupMember.group_id == group_id, GroupMember.is_manager.is_(True)
        )
    )
    return len(list(rows))
