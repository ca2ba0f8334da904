"""Accounts, tokens, administration and plans."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from docstore.deps import DB, CurrentActor, Svc, anonymous_actor, client_ip
from docstore.schemas import Id, problems
from docstore.users import login_limits, service
from docstore.users.models import User
from docstore.users.schemas import (
    AdminUserIn,
    AdminUserPatch,
    LoginIn,
    PlanIn,
    PlanOut,
    RegisterIn,
    TokenOut,
    UserOut,
)

router = APIRouter(tags=["users"])


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses=problems(400, 403, 409, 422),
)
def register(body: RegisterIn, request: Request, db: DB, svc: Svc) -> TokenOut:
    """Open sign-up: creates the account and signs it in."""
    ua = request.headers.get("user-agent")
    return login_limits.sign_up(db, svc, body, ua, client_ip(request))


@router.post("/auth/login", response_model=TokenOut, responses=problems(400, 401, 422, 429))
def login(body: LoginIn, request: Request, db: DB, svc: Svc) -> TokenOut:
    """Exchange email and password for a bearer token.

    After too many failures from the client's address, or on the account, the answer is
    429 `rate_limited` with `Retry-After`, before the password is checked."""
    actor = anonymous_actor(request)
    return login_limits.sign_in(db, svc, actor, body, request.headers.get("user-agent"))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401))
def logout(actor: CurrentActor, db: DB) -> Response:
    """Revoke the token used for this request."""
    assert actor.token_id is not None
    service.logout(db, actor.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/me", response_model=UserOut, responses=problems(401))
def me(actor: CurrentActor, db: DB) -> UserOut:
    """The caller's account, quota and usage."""
    assert actor.user_id is not None
    return UserOut.model_validate(db.get_one(User, actor.user_id))


# GET /admin/users (search, paginated, with usage) is in docstore.admin.endpoints.


@router.post(
    "/admin/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problems(400, 401, 403, 409, 422),
)
def admin_create_user(body: AdminUserIn, actor: CurrentActor, db: DB) -> UserOut:
    """Create an account (admin)."""
    service.require_admin(actor)
    user = service.create_user(
        db,
        email=body.email,
        name=body.name,
        password=body.password,
        plan_name=body.plan,
        quota_bytes=body.quota_bytes,
        is_admin=body.is_admin,
        email_verified=body.email_verified,
    )
    return UserOut.model_validate(user)


@router.patch(
    "/admin/users/{user_id}", response_model=UserOut, responses=problems(400, 401, 403, 404, 422)
)
def admin_update_user(user_id: Id, body: AdminUserPatch, actor: CurrentActor, db: DB) -> UserOut:
    """Change a user's quota, plan or admin flag (admin)."""
    service.require_admin(actor)
    user = service.admin_update(
        db, user_id, quota_bytes=body.quota_bytes, plan_name=body.plan, is_admin=body.is_admin
    )
    return UserOut.model_validate(user)


@router.get("/admin/plans", response_model=list[PlanOut], responses=problems(401, 403))
def list_plans(actor: CurrentActor, db: DB) -> list[PlanOut]:
    """Every plan (admin)."""
    service.require_admin(actor)
    return [PlanOut.model_validate(p) for p in service.list_plans(db)]


@router.put("/admin/plans/{name}", response_model=PlanOut, responses=problems(400, 401, 403, 422))
def put_plan(name: str, body: PlanIn, actor: CurrentActor, db: DB) -> PlanOut:
    """Create or replace a plan (admin)."""
    service.require_admin(actor)
    plan = service.put_plan(db, name, body.quota_bytes, body.max_versions, body.retention_days)
    return PlanOut.model_validate(plan)
