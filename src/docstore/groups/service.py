"""Group rules: the creator manages a group, managers add and remove members, a member may
leave, and a group always keeps a manager (the last one cannot leave: delete the group).

Only members and managers see a group (404 for everyone else). A membership change or a
deleted group changes what the group's shares grant from the next request on, in every
process: the owners who shared with the group have their cached grants invalidated before
the change commits (sharing/group_grants.py), under the group's row lock.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.db import utcnow
from docstore.errors import Conflict, Forbidden, NotFound, ValidationFailed
from docstore.groups import repository as repo
from docstore.groups.models import Group, GroupMember
from docstore.groups.schemas import GroupIn, GroupOut, GroupUser, MemberIn
from docstore.names import clean_display_name
from docstore.pagination import cursor_int, page
from docstore.sharing import group_grants
from docstore.users import repository as user_repo
from docstore.users.models import User
from docstore.users.service import normalise_email


def _me(actor: Actor) -> int:
    if actor.user is None:
        raise NotFound()
    return actor.user.id


def _out(group: Group, rows: list[tuple[GroupMember, User]], me: int) -> GroupOut:
    members = [GroupUser(id=u.id, name=u.name, email=u.email) for _, u in rows]
    managers = [GroupUser(id=u.id, name=u.name, email=u.email) for m, u in rows if m.is_manager]
    return GroupOut(
        id=group.id,
        name=group.name,
        created_by=group.created_by,
        created_at=group.created_at,
        managers=managers,
        members=members,
        is_manager=any(m.is_manager and u.id == me for m, u in rows),
    )


def _group_out(db: Session, group: Group, me: int) -> GroupOut:
    db.flush()
    return _out(group, repo.member_rows(db, [group.id]), me)


def _audit(db: Session, actor: Actor, action: Action, group: Group, **details: object) -> None:
    record(db, actor, action, details={"group_id": group.id, "group_name": group.name, **details})


def _visible(
    db: Session, actor: Actor, group_id: int, *, lock: bool = False
) -> tuple[Group, GroupMember]:
    """The group and the caller's membership; 404 unless the caller is in it."""
    me = _me(actor)
    group = repo.locked(db, group_id) if lock else db.get(Group, group_id)
    if group is None:
        raise NotFound()
    mine = repo.membership(db, group.id, me)
    if mine is None:
        raise NotFound()
    return group, mine


def _managed(db: Session, actor: Actor, group_id: int) -> tuple[Group, GroupMember]:
    """The group, locked, if the caller manages it: 404 for a stranger, 403 for a member."""
    group, mine = _visible(db, actor, group_id, lock=True)
    if not mine.is_manager:
        raise Forbidden("Only the group's managers can do this.")
    return group, mine


def create(db: Session, actor: Actor, body: GroupIn) -> GroupOut:
    """A new group, managed by its creator (its first member)."""
    me = _me(actor)
    name = clean_display_name(body.name)
    group = Group(name=name, created_by=me, created_at=utcnow())
    db.add(group)
    db.flush()
    db.add(GroupMember(group_id=group.id, user_id=me, is_manager=True, added_at=group.created_at))
    _audit(db, actor, Action.GROUP_CREATE, group)
    return _group_out(db, group, me)


def get(db: Session, actor: Actor, group_id: int) -> GroupOut:
    """A group the caller is in."""
    group, _ = _visible(db, actor, group_id)
    return _group_out(db, group, _me(actor))


def list_mine(
    db: Session, actor: Actor, limit: int, cursor: str | None
) -> tuple[list[GroupOut], str | None]:
    """The groups the caller belongs to (managed ones included), oldest first."""
    me = _me(actor)
    stmt = (
        select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == me)
    )
    after = cursor_int(cursor, "i")
    if after is not None:
        stmt = stmt.where(Group.id > after)
    groups = list(db.scalars(stmt.order_by(Group.id).limit(limit + 1)))
    shown, next_cursor = page(groups, limit, lambda g: {"i": g.id})
    rows = repo.member_rows(db, [g.id for g in shown])
    by_group: dict[int, list[tuple[GroupMember, User]]] = {g.id: [] for g in shown}
    for m, u in rows:
        by_group[m.group_id].append((m, u))
    return [_out(g, by_group[g.id], me) for g in shown], next_cursor


def _user_to_add(db: Session, body: MemberIn) -> User:
    if (body.email is None) == (body.user_id is None):
        raise ValidationFailed("Give exactly one of email and user_id.")
    if body.email is not None:
        user = user_repo.by_email(db, normalise_email(str(body.email)))
        # As for shares: an address counts only once proven, so whoever registered an
        # address first cannot be added in its owner's place.
        if user is not None and not user.email_verified:
            user = None
    else:
        user = db.get(User, body.user_id)
    if user is None or not user.is_active:
        raise NotFound("No account with this email or id.")
    return user


def add_member(db: Session, actor: Actor, group_id: int, body: MemberIn) -> GroupOut:
    """Add a user to a group, or change a member's manager flag (managers only)."""
    group, _ = _managed(db, actor, group_id)
    user = _user_to_add(db, body)
    existing = repo.membership(db, group.id, user.id)
    if existing is not None:
        if body.manager is None or body.manager == existing.is_manager:
            raise Conflict("This user is already a member of the group.")
        if not body.manager and repo.manager_count(db, group.id) <= 1:
            raise Conflict("A group keeps at least one manager: name another manager first.")
        existing.is_manager = body.manager
        _audit(
            db, actor, Action.GROUP_MEMBER_ADD, group, member_id=user.id, manager=body.manager,
            updated=True,
        )  # fmt: skip
        return _group_out(db, group, _me(actor))
    # A new member gains access: tell the caches (a failure only delays the new access).
    group_grants.membership_changed(db, group.id, strict=False)
    seen = group_grants.watch_group(db, group.id)
    db.add(
        GroupMember(
            group_id=group.id, user_id=user.id, is_manager=bool(body.manager), added_at=utcnow()
        )
    )
    group_grants.settle(db, actor, seen)
    _audit(db, actor, Action.GROUP_MEMBER_ADD, group, member_id=user.id, manager=bool(body.manager))
    return _group_out(db, group, _me(actor))


def remove_member(db: Session, actor: Actor, group_id: int, user_id: int) -> None:
    """Take a user out of a group: managers remove anyone, a member may leave. Their access
    through the group's shares ends on their next request."""
    me = _me(actor)
    group, mine = _visible(db, actor, group_id, lock=True)
    if user_id != me and not mine.is_manager:
        raise Forbidden("Only the group's managers can remove other members.")
    target = mine if user_id == me else repo.membership(db, group.id, user_id)
    if target is None:
        raise NotFound()
    if target.is_manager and repo.manager_count(db, group.id) <= 1:
        raise Conflict(
            "The last manager cannot leave the group: name another manager first, "
            "or delete the group."
        )
    group_grants.membership_changed(db, group.id, strict=True)
    seen = group_grants.watch_group(db, group.id)
    db.delete(target)
    db.flush()
    group_grants.settle(db, actor, seen)
    _audit(db, actor, Action.GROUP_MEMBER_REMOVE, group, member_id=user_id)


def delete_group(db: Session, actor: Actor, group_id: int) -> None:
    """Delete a group (managers only): every share to it ends, for every member at once."""
    group, _ = _managed(db, actor, group_id)
    ended = group_grants.end_shares(db, actor, group.id, group.name)
    members = sorted(
        db.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group.id))
    )
    # One entry for the whole group: every member leaves it with its deletion.
    _audit(
        db, actor, Action.GROUP_MEMBER_REMOVE, group, group_deleted=True, member_ids=members,
        shares_ended=ended,
    )  # fmt: skip
    db.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    db.delete(group)
    db.flush()
