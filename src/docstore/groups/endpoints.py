"""Group endpoints: create, list, show, add and remove members, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response, status

from docstore.deps import DB, CurrentActor
from docstore.groups import service
from docstore.groups.schemas import GroupIn, GroupOut, GroupPage, MemberIn
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems

router = APIRouter(prefix="/groups", tags=["groups"])


def _with_cache_problem(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out = problems(*statuses, 503)
    out[503] = {**out[503], "description": "Permission cache unavailable (cache_unavailable)"}
    return out


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    responses=problems(400, 401, 422),
)
def create_group(body: GroupIn, actor: CurrentActor, db: DB) -> GroupOut:
    """Create a group; the caller is its first member and manager."""
    return service.create(db, actor, body)


@router.get("", response_model=GroupPage, responses=problems(400, 401))
def list_groups(
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> GroupPage:
    """The groups the caller belongs to or manages, oldest first."""
    items, next_cursor = service.list_mine(db, actor, limit, cursor)
    return GroupPage(items=items, next_cursor=next_cursor)


@router.get("/{group_id}", response_model=GroupOut, responses=problems(401, 404))
def get_group(group_id: Id, actor: CurrentActor, db: DB) -> GroupOut:
    """A group with its managers and members (members and managers only)."""
    return service.get(db, actor, group_id)


@router.post(
    "/{group_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    responses=_with_cache_problem(400, 401, 403, 404, 409, 422),
)
def add_member(group_id: Id, body: MemberIn, actor: CurrentActor, db: DB) -> GroupOut:
    """Add a user by email or id (managers only); `manager: true` makes them a manager.
    For a member already in the group, `manager` changes their manager flag."""
    return service.add_member(db, actor, group_id, body)


@router.delete(
    "/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_with_cache_problem(401, 403, 404, 409),
)
def remove_member(group_id: Id, user_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Remove a member (managers), or leave (any member). Their access through the group's
    shares ends on their next request. The last manager cannot leave (409)."""
    service.remove_member(db, actor, group_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{group_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_with_cache_problem(401, 403, 404),
)
def delete_group(group_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Delete a group (managers only): every share to it ends at once."""
    service.delete_group(db, actor, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
