"""Account links over HTTP: verify an address, accept an invitation, reset a password,
change the address (API.md "Accounts"; additions in docs/API-ADDITIONS.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from docstore.accounts import service
from docstore.accounts.schemas import (
    AcceptedOut,
    EmailChangeIn,
    EmailIn,
    InvitationAcceptIn,
    InvitationIn,
    ResetConfirmIn,
    TokenIn,
)
from docstore.deps import DB, CurrentActor, Svc, anonymous_actor, authenticate_as, bearer_token
from docstore.schemas import Id, problems
from docstore.users.schemas import TokenOut, UserOut

router = APIRouter(tags=["accounts"])


def _accepted() -> AcceptedOut:
    return AcceptedOut()


@router.post("/auth/verify-email", response_model=UserOut, responses=problems(400, 409, 422))
def verify_email(body: TokenIn, request: Request, db: DB) -> UserOut:
    """Follow a mailed verification (or email-change) link: the address is proven and the
    pending shares to it apply. 400 for an unknown, used or expired token."""
    user = service.verify_email(db, anonymous_actor(request), body.token)
    return UserOut.model_validate(user)


@router.post(
    "/auth/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problems(400, 401, 429),
)
def resend_verification(actor: CurrentActor, db: DB) -> AcceptedOut:
    """Mail a new verification link (a few an hour; nothing when already verified)."""
    service.resend_verification(db, actor)
    return _accepted()


@router.post(
    "/auth/invitations/{token}/accept",
    response_model=TokenOut,
    responses=problems(400, 401, 403, 409, 422),
)
def accept_invitation(
    token: str, request: Request, db: DB, svc: Svc, body: InvitationAcceptIn | None = None
) -> TokenOut:
    """Claim an invitation: with `{name, password}` the account is made (verified), or,
    signed in as the account with the invited address, that address is verified. Either
    way the pending shares to it apply, and a new token is returned."""
    bearer = bearer_token(request)
    actor = anonymous_actor(request)
    if bearer is not None:
        actor = authenticate_as(actor, db, bearer)
    return service.accept_invitation(
        db,
        actor,
        token,
        body,
        token_ttl_seconds=svc.settings.token_ttl_seconds,
        user_agent=request.headers.get("user-agent"),
    )


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problems(400, 422, 429),
)
def password_reset(body: EmailIn, request: Request, db: DB) -> AcceptedOut:
    """Mail a password-reset link if the address has an account: 202 either way."""
    service.request_password_reset(db, anonymous_actor(request), body.email)
    return _accepted()


@router.post(
    "/auth/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(400, 422),
)
def password_reset_confirm(body: ResetConfirmIn, request: Request, db: DB) -> Response:
    """Set the new password from a reset link; every session and token of the account is
    revoked."""
    service.confirm_password_reset(db, anonymous_actor(request), body.token, body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/me/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problems(400, 401, 403, 409, 422, 429),
)
def change_email(body: EmailChangeIn, actor: CurrentActor, db: DB) -> AcceptedOut:
    """Ask to change the account's address: the new one gets a link, and replaces the old
    one only once it is followed (POST /auth/verify-email)."""
    service.request_email_change(db, actor, str(body.email), body.password)
    return _accepted()


@router.post(
    "/admin/invitations",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problems(400, 401, 403, 409, 422),
)
def admin_invite(body: InvitationIn, actor: CurrentActor, db: DB) -> AcceptedOut:
    """Mail an address an invitation to create an account (admin; also when sign-up is
    closed). Its link is accepted with POST /auth/invitations/{token}/accept."""
    service.admin_invite(db, actor, str(body.email))
    return _accepted()


@router.post(
    "/admin/users/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problems(400, 401, 403, 404, 422),
)
def admin_password_reset(user_id: Id, actor: CurrentActor, db: DB) -> AcceptedOut:
    """Mail the user a password-reset link (admin)."""
    service.admin_password_reset(db, actor, user_id)
    return _accepted()
