"""An account's own security: its password, its signed-in sessions and its app passwords.

Sessions are rows of `api_tokens`: kind `api` (from `POST /auth/login` or sign-up) and
`session` (the web UI's cookie) are listed as "session", `app_password` as itself. Every
request checks its token in the database (no process caches tokens), so a revocation
holds on the next request in every server process.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from docstore import throttle
from docstore.audit.service import Action, record, record_failed_attempt
from docstore.context import Actor
from docstore.db import utcnow
from docstore.errors import DocstoreError, NotFound
from docstore.pagination import cursor_int, page
from docstore.security import hash_password, verify_password
from docstore.services import Services
from docstore.users import service
from docstore.users.login_limits import LoginGuard, LoginLimits
from docstore.users.models import ApiToken, User
from docstore.users.session_schemas import AppPasswordOut, SessionOut

APP_KIND = "app_password"
# The kinds a person signs in with; other kinds (if any) are not sessions and not listed.
LISTED_KINDS = ("api", "session", APP_KIND)


class CurrentPasswordInvalid(DocstoreError):
    """The current password given to change it is wrong (throttled like a sign-in)."""

    status, code, title = 403, "current_password_invalid", "The current password is wrong"


def _active(user_id: int) -> list[ColumnElement[bool]]:
    now = utcnow()
    return [
        ApiToken.user_id == user_id,
        ApiToken.kind.in_(LISTED_KINDS),
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
    ]


def session_out(row: ApiToken, current_id: int | None) -> SessionOut:
    """The API view of a token: never its secret."""
    return SessionOut(
        id=row.id,
        kind=APP_KIND if row.kind == APP_KIND else "session",
        name=row.name,
        user_agent=row.user_agent,
        ip_address=row.ip_address,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        current=row.id == current_id,
    )


def list_sessions(
    db: Session, actor: Actor, limit: int, cursor: str | None
) -> tuple[list[SessionOut], str | None]:
    """The caller's active sessions and app passwords, newest first."""
    assert actor.user_id is not None
    stmt = select(ApiToken).where(*_active(actor.user_id))
    before = cursor_int(cursor, "i")
    if before is not None:
        stmt = stmt.where(ApiToken.id < before)
    rows = list(db.scalars(stmt.order_by(ApiToken.id.desc()).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda t: {"i": t.id})
    return [session_out(t, actor.token_id) for t in shown], next_cursor


def revoke(db: Session, actor: Actor, token_id: int) -> None:
    """End one of the caller's sessions or app passwords at once; 404 for anything else
    (another account's, or one already ended)."""
    assert actor.user_id is not None
    result = db.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, *_active(actor.user_id))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound()


def revoke_others(db: Session, user_id: int, keep_token_id: int | None) -> int:
    """End every token of the account but `keep_token_id`; how many were ended."""
    stmt = update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    if keep_token_id is not None:
        stmt = stmt.where(ApiToken.id != keep_token_id)
    result = db.execute(
        stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def create_app_password(db: Session, actor: Actor, name: str) -> AppPasswordOut:
    """A named token without expiry for one device or app; its secret is returned once."""
    assert actor.user is not None
    token, row = service.issue_token(
        db, actor.user, None, actor.user_agent, ip_address=actor.ip, kind=APP_KIND, name=name
    )
    return AppPasswordOut(id=row.id, name=name, token=token, created_at=row.created_at)


def change_password(
    db: Session, svc: Services, actor: Actor, current_password: str, new_password: str
) -> int:
    """Set a new password after checking the current one, and end every other session and
    app password of the account (the caller's own token stays valid). Audited as
    PASSWORD_CHANGE. Returns how many sessions and app passwords were ended.

    A wrong current password counts as a failed sign-in on the account and the caller's
    address (`login_limits`: 429 once over the limits, before the password is checked),
    is audited as LOGIN_FAILED and answers 403 `current_password_invalid`."""
    user = actor.user
    assert user is not None
    guard = LoginGuard(
        throttle.for_session(db), LoginLimits.from_settings(svc.settings), user.email, actor.ip
    )
    guard.admit()
    try:
        # The hash came with the token's row: argon2 runs before the transaction writes.
        ok = verify_password(user.password_hash, current_password)
    except BaseException:
        guard.cancel()
        raise
    if not ok:
        guard.failed()
        details = {"reason": "password_change"}
        record_failed_attempt(
            db, svc.database, actor, Action.LOGIN_FAILED, user_id=user.id, details=details
        )
        raise CurrentPasswordInvalid("The current password is not right.")
    guard.succeeded()
    new_hash = hash_password(new_password)
    # Tokens before the account row, the order authentication and the writes that charge
    # quota take them in (token touch, then user lock): two transactions never wait on
    # each other in a circle on PostgreSQL.
    ended = revoke_others(db, user.id, actor.token_id)
    db.execute(
        update(User)
        .where(User.id == user.id)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False)
    )
    record(db, actor, Action.PASSWORD_CHANGE, user_id=user.id, details={"sessions_ended": ended})
    return ended
