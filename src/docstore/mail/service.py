"""Queue a mail: `enqueue(db, to=..., template=..., context=...)`.

The message is rendered now and written to the outbox in the caller's transaction, so it is
sent only if that transaction commits (never for a rolled-back action) and, once committed,
is retried by the `mail.deliver` job until the server takes it (never lost to a brief SMTP
outage). Bodies come from `templates/<template>.txt` and `.html` (Jinja2); every template
sees `instance_name` and `public_url`, plus the caller's `context`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from docstore import jobs
from docstore.config import Settings, get_settings
from docstore.db import after_commit
from docstore.mail.models import OutboxMail
from docstore.services import for_session as services_for

# Each template's subject (a Jinja2 string over the same context as its bodies).
SUBJECTS = {
    "verify_email": "Confirm your email address for {{ instance_name }}",
    "invitation": "{{ inviter }} shared “{{ item_name }}” with you on {{ instance_name }}",
    "admin_invitation": "{{ inviter }} invited you to {{ instance_name }}",
    "password_reset": "Reset your {{ instance_name }} password",
    "email_change": "Confirm your new email address for {{ instance_name }}",
}


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("docstore.mail", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def settings_for(db: Session) -> Settings:
    """The settings of the services this session belongs to (the process's otherwise)."""
    svc = services_for(db)
    return svc.settings if svc is not None else get_settings()


def link(db: Session, path: str) -> str:
    """An absolute link to `path` (starting with '/') under DOCSTORE_PUBLIC_URL."""
    return settings_for(db).resolved_public_url + path


def render(settings: Settings, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """Subject, plain-text body and HTML body of `template` over `context`."""
    values = {
        "instance_name": settings.instance_name,
        "public_url": settings.resolved_public_url,
        **context,
    }
    env = _env()
    subject = env.from_string(SUBJECTS[template]).render(values)
    subject = " ".join(subject.split())[:300]  # one line: no header injection
    text = env.get_template(f"{template}.txt").render(values)
    html = env.get_template(f"{template}.html").render(values)
    return subject, text, html


def enqueue(db: Session, *, to: str, template: str, context: Mapping[str, Any]) -> OutboxMail:
    """Queue `template` for `to` in the caller's transaction (see the module's docstring).

    `template` is a key of SUBJECTS; `context` fills its bodies (e.g. `link`). Returns the
    outbox row (flushed: it has its id). Once the transaction commits, this process's
    background worker is woken to deliver it."""
    settings = settings_for(db)
    subject, text, html = render(settings, template, context)
    row = OutboxMail(
        to_address=to, template=template, subject=subject, body_text=text, body_html=html
    )
    db.add(row)
    db.flush()
    svc = services_for(db)
    if svc is not None:
        after_commit(db, lambda: jobs.wake(svc, "mail.deliver"))
    return row
