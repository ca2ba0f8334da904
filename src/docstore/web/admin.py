"""The admin console's pages: Users, Plans, Storage, Audit.

Each page renders the frame; its script (static/js/admin.js) reads and changes everything
through the `/api/v1/admin/...` endpoints the CLI uses, with the session cookie and the
page's CSRF token. Administrators only: anyone else gets the same 404 page as for an item
they cannot see, and no link to the console.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from docstore.deps import DB
from docstore.web.routes import render, session_user, to_login

router = APIRouter(include_in_schema=False)

PAGES = {
    "users": ("admin_users.html", "Users"),
    "plans": ("admin_plans.html", "Plans"),
    "storage": ("admin_storage.html", "Storage"),
    "audit": ("admin_audit.html", "Audit"),
}


def _page(request: Request, db: DB, section: str) -> Response:
    session = session_user(request, db)
    if session is None:
        return to_login(request)
    user, token = session
    if not user.is_admin:
        return render(
            request, "notfound.html", user=user, token=token, title="Not found",
            page="notfound", what="page", status_code=404,
        )  # fmt: skip
    template, title = PAGES[section]
    return render(
        request, template, user=user, token=token, title=f"Admin · {title}",
        page=f"admin-{section}", section=section, sections=PAGES,
    )  # fmt: skip


@router.get("/admin")
def admin_home(request: Request, db: DB) -> Response:
    """The console's first page (404 for non-admins, as every console page)."""
    response = _page(request, db, "users")
    if response.status_code == 200:
        return RedirectResponse("/admin/users", status_code=303)
    return response


@router.get("/admin/users")
def users_page(request: Request, db: DB) -> Response:
    """Accounts: search, create, disable/enable, change plan or quota, usage."""
    return _page(request, db, "users")


@router.get("/admin/plans")
def plans_page(request: Request, db: DB) -> Response:
    """Plans: create and edit quota, versions kept and retention days."""
    return _page(request, db, "plans")


@router.get("/admin/storage")
def storage_page(request: Request, db: DB) -> Response:
    """Storage totals, dedup savings, pending GC, last job runs, retention dry run."""
    return _page(request, db, "storage")


@router.get("/admin/audit")
def audit_page(request: Request, db: DB) -> Response:
    """The audit chain's verification status, verify now, export."""
    return _page(request, db, "audit")


def install(app: FastAPI) -> None:
    """Serve the console's pages."""
    app.include_router(router)
