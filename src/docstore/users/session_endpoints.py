"""The caller's account security: password change, sessions, app passwords (API.md
"Accounts")."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from docstore.deps import DB, CurrentActor, Svc
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems
from docstore.users import sessions
from docstore.users.session_schemas import (
    AppPasswordIn,
    AppPasswordOut,
    PasswordChangeIn,
    SessionPage,
)

router = APIRouter(tags=["users"])


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(400, 401, 403, 422, 429),
)
def change_password(body: PasswordChangeIn, actor: CurrentActor, db: DB, svc: Svc) -> Response:
    """Change the caller's password; every other session and app password is revoked.

    A wrong `current_password` is 403 `current_password_invalid` and counts as a failed
    sign-in (429 `rate_limited` with `Retry-After` past the login limits)."""
    sessions.change_password(db, svc, actor, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/me/sessions", response_model=SessionPage, responses=problems(400, 401))
def list_sessions(
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> SessionPage:
    """The caller's active sessions and app passwords, newest first; `current` marks the
    one this request used."""
    items, next_cursor = sessions.list_sessions(db, actor, limit, cursor)
    return SessionPage(items=items, next_cursor=next_cursor)


@router.delete(
    "/users/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 404),
)
def revoke_session(session_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Revoke a session or app password of the caller's at once (404 for any other)."""
    sessions.revoke(db, actor, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/me/app-passwords",
    status_code=status.HTTP_201_CREATED,
    response_model=AppPasswordOut,
    responses=problems(400, 401, 422),
)
def create_app_password(body: AppPasswordIn, actor: CurrentActor, db: DB) -> AppPasswordOut:
    """A new app password: shown once, valid until revoked, usable as a Bearer token and
    as the WebDAV Basic password."""
    return sessions.create_app_password(db, actor, body.name)
