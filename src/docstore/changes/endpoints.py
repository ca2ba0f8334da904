"""Change-feed endpoints: the current cursor, the changes after one, and the long-poll."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from docstore.changes import feed
from docstore.changes.notify import Notifier, notifier_for
from docstore.changes.schemas import ChangesPage, CursorOut, WaitOut
from docstore.context import Actor
from docstore.deps import UnitOfWork
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems

router = APIRouter(prefix="/changes", tags=["changes"])

# Long-polls one process holds at once; beyond, a waiter is told to come back later.
MAX_WAITERS = 20_000
BACKOFF_SECONDS = 5


@router.get("/cursor", response_model=CursorOut, responses=problems(401, 404))
async def cursor(request: Request, folder_id: Id | None = None) -> CursorOut:
    """The current position: for the caller's whole view, or one folder's subtree."""
    raw = await UnitOfWork(request).run(
        lambda db, actor: feed.start(db, actor, folder_id), read_only=True
    )
    return CursorOut(cursor=raw)


@router.get("", response_model=ChangesPage, responses=problems(400, 401, 404, 410))
async def list_changes(
    request: Request, cursor: str, limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
) -> Response:
    """The caller's changes after `cursor`, oldest first; `cursor` in the answer is where
    to continue (410 cursor_expired: list again and start from a new cursor)."""
    uow = UnitOfWork(request)
    settings = uow.svc.settings
    page = await uow.run(
        lambda db, actor: feed.page(db, actor, feed.decode(cursor, settings), limit),
        read_only=True,
    )
    # Built from validated views already: serialised once, not validated again.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/wait", response_model=WaitOut, responses=problems(400, 401, 404, 410))
async def wait(request: Request, cursor: str, timeout: int = Query(30, ge=1, le=60)) -> WaitOut:
    """Answer as soon as the caller has a change after `cursor`, or at `timeout` seconds.
    While it waits the request holds no database connection and no thread."""
    uow = UnitOfWork(request)
    notifier = notifier_for(uow.svc)
    if notifier.waiting >= MAX_WAITERS:
        return WaitOut(changes=False, backoff=BACKOFF_SECONDS)
    await notifier.listening()
    mark = notifier.generation  # before the check: a notice after it is not missed

    def first(db: Session, actor: Actor) -> tuple[Actor, feed.Position, bool]:
        pos = feed.decode(cursor, uow.svc.settings)  # after authentication: 401 first
        return actor, pos, feed.has_changes(db, actor, pos)

    async with notifier.checks:
        actor, pos, found = await uow.run(first, read_only=True)
    if found:
        return WaitOut(changes=True)
    assert actor.user_id is not None  # has_changes answers accounts only
    async with notifier.waiter(actor.user_id) as event:
        # A commit between the check and here left a notice: check again, else wait.
        if notifier.noticed_since(actor.user_id, mark) and await _has(uow, pos, notifier):
            return WaitOut(changes=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
    return WaitOut(changes=await _has(uow, pos, notifier))


async def _has(uow: UnitOfWork, pos: feed.Position, notifier: Notifier) -> bool:
    async with notifier.checks:
        return await uow.run(lambda db, actor: feed.has_changes(db, actor, pos), read_only=True)
