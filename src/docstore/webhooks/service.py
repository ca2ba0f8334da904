"""Webhook rules: a user manages their own webhooks (anyone else's is 404); a URL must pass
the SSRF guard (docstore.webhooks.network) when saved, and again at every delivery; a
webhook starts at the feed's current position and is told only what its owner sees.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from docstore import jobs
from docstore.audit.service import Action, record
from docstore.config import Settings, get_settings
from docstore.context import Actor
from docstore.db import after_commit, utcnow
from docstore.errors import NotFound, ValidationFailed
from docstore.pagination import cursor_int, page
from docstore.services import for_session as services_for
from docstore.sharing import permissions
from docstore.webhooks import feed, network, signing
from docstore.webhooks.models import Webhook, WebhookDelivery
from docstore.webhooks.schemas import (
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)

JOB = "webhooks.deliver"


def _settings(db: Session) -> Settings:
    svc = services_for(db)
    return svc.settings if svc is not None else get_settings()


def _me(actor: Actor) -> int:
    if actor.user is None:
        raise NotFound()
    return actor.user.id


def _wake(db: Session) -> None:
    """Run the delivery job as soon as this transaction commits."""
    svc = services_for(db)
    if svc is not None:
        after_commit(db, lambda: jobs.wake(svc, JOB))


def checked_url(db: Session, url: str) -> str:
    """The URL, if deliveries may go there (422 with the reason otherwise)."""
    try:
        network.check(url, allow_private=_settings(db).webhook_allow_private)
    except network.Refused as exc:
        raise ValidationFailed(str(exc), field="url") from exc
    return url


def out(hook: Webhook) -> WebhookOut:
    """A webhook as its owner sees it."""
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        events=hook.events.split(","),
        folder_id=hook.folder_id,
        active=hook.active,
        disabled_reason=hook.disabled_reason,
        failures=hook.failures,
        next_attempt_at=hook.next_attempt_at if hook.active and hook.failures else None,
        created_at=hook.created_at,
    )


def secret(db: Session, hook: Webhook) -> str:
    """The webhook's signing secret (derived from the server's secret key)."""
    return signing.secret_for(_settings(db).resolved_secret_key(), hook.secret_salt)


def _audit(db: Session, actor: Actor, action: Action, hook: Webhook, **details: object) -> None:
    record(
        db, actor, action, folder_id=hook.folder_id,
        details={"webhook_id": hook.id, "url": hook.url, "events": hook.events, **details},
    )  # fmt: skip


def create(db: Session, actor: Actor, body: WebhookIn) -> WebhookCreated:
    """A new webhook owned by the caller; its secret is in this answer only."""
    me = _me(actor)
    settings = _settings(db)
    url = checked_url(db, body.url)
    if body.folder_id is not None:
        permissions.get_folder_for(db, actor, body.folder_id)  # 404 unless visible
    count = db.scalar(select(func.count()).select_from(Webhook).where(Webhook.owner_id == me))
    if (count or 0) >= settings.webhook_max_per_user:
        raise ValidationFailed(f"A user may have at most {settings.webhook_max_per_user} webhooks.")
    now = utcnow()
    hook = Webhook(
        owner_id=me,
        url=url,
        events=",".join(body.events),
        folder_id=body.folder_id,
        active=True,
        secret_salt=signing.new_salt(),
        position=feed.head(db),
        failures=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    db.add(hook)
    db.flush()
    _audit(db, actor, Action.WEBHOOK_CREATE, hook)
    return WebhookCreated(**out(hook).model_dump(), secret=secret(db, hook))


def _mine(db: Session, actor: Actor, webhook_id: int, *, lock: bool = False) -> Webhook:
    me = _me(actor)
    stmt = select(Webhook).where(Webhook.id == webhook_id, Webhook.owner_id == me)
    hook = db.scalar(stmt.with_for_update() if lock else stmt)
    if hook is None:
        raise NotFound()
    return hook


def get(db: Session, actor: Actor, webhook_id: int) -> WebhookOut:
    """One of the caller's webhooks."""
    return out(_mine(db, actor, webhook_id))


def list_mine(
    db: Session, actor: Actor, limit: int, cursor: str | None
) -> tuple[list[WebhookOut], str | None]:
    """The caller's webhooks, oldest first."""
    stmt = select(Webhook).where(Webhook.owner_id == _me(actor))
    after = cursor_int(cursor, "i")
    if after is not None:
        stmt = stmt.where(Webhook.id > after)
    rows = list(db.scalars(stmt.order_by(Webhook.id).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda h: {"i": h.id})
    return [out(h) for h in shown], next_cursor


def update(db: Session, actor: Actor, webhook_id: int, body: WebhookPatch) -> WebhookOut:
    """Pause, resume (a disabled webhook starts again: retries from the change it stopped
    at), change events or URL."""
    hook = _mine(db, actor, webhook_id, lock=True)
    now = utcnow()
    if body.url is not None and body.url != hook.url:
        # A new destination for the owner's changes is audited as a new webhook would be.
        previous, hook.url = hook.url, checked_url(db, body.url)
        _audit(db, actor, Action.WEBHOOK_CREATE, hook, updated=True, previous_url=previous)
    if body.events is not None:
        hook.events = ",".join(body.events)
    if body.active is not None:
        if body.active and not hook.active:
            hook.failures, hook.failing_since, hook.next_attempt_at = 0, None, now
            _wake(db)
        hook.active = body.active
        hook.disabled_reason = None
    hook.updated_at = now
    db.flush()
    return out(hook)


def delete(db: Session, actor: Actor, webhook_id: int) -> None:
    """Delete a webhook and its delivery history; nothing more is sent."""
    hook = _mine(db, actor, webhook_id, lock=True)
    _audit(db, actor, Action.WEBHOOK_DELETE, hook)
    db.delete(hook)
    db.flush()


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    """A delivery attempt as the owner sees it."""
    return DeliveryOut(
        id=row.id,
        change_seq=row.change_seq,
        attempt=row.attempt,
        status=row.status,  # type: ignore[arg-type]  # one of the three (models.py)
        response_code=row.response_code,
        error=row.error,
        latency_ms=row.latency_ms,
        redelivery=row.manual,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def deliveries(
    db: Session, actor: Actor, webhook_id: int, limit: int, cursor: str | None
) -> tuple[list[DeliveryOut], str | None]:
    """The webhook's delivery attempts, newest first."""
    hook = _mine(db, actor, webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
    before = cursor_int(cursor, "i")
    if before is not None:
        stmt = stmt.where(WebhookDelivery.id < before)
    rows = list(db.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda d: {"i": d.id})
    return [delivery_out(d) for d in shown], next_cursor


def redeliver(
    db: Session, actor: Actor, webhook_id: int, delivery_id: int, now: datetime | None = None
) -> DeliveryOut:
    """Queue one more attempt at the change a past delivery carried (outside the webhook's
    queue: its order and retries are unchanged). It is sent only if the owner can still
    see the change when the worker sends it."""
    hook = _mine(db, actor, webhook_id)
    past = db.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == hook.id
        )
    )
    if past is None:
        raise NotFound()
    row = WebhookDelivery(
        webhook_id=hook.id,
        change_seq=past.change_seq,
        attempt=1,
        status="pending",
        manual=True,
        created_at=now or utcnow(),
    )
    db.add(row)
    db.flush()
    _wake(db)
    return delivery_out(row)
