"""Delivery of webhooks by the worker (`webhooks.deliver`).

Each webhook is a queue over the change outbox: its `position` is the last change done
with. A pass reads, as the webhook's owner and at that moment, the feed after `position`
(docstore.webhooks.feed: the feed's own visibility read, so a revoked share stops the
changes at once), skips changes of other ops, and POSTs the first matching one. Only a
2xx moves `position` past it: change N+1 never leaves before N was acknowledged, and a
worker killed between the POST and recording its answer sends N again (at least once;
receivers dedupe on `webhook_id` + `seq`). A failure is retried after a doubling delay
(`DOCSTORE_WEBHOOK_RETRY_BASE_SECONDS`, capped) until the head change has failed for the
retry window (24 h), then the webhook is disabled with the reason, for its owner to read.

Every attempt is a `webhook_deliveries` row, written before the POST (pending) and
completed after it. Rows are read in one transaction, the POST runs with none open, and
its outcome is recorded in a transaction of its own (docs/DEVELOPING.md, "Transactions").
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from docstore.config import Settings
from docstore.db import utcnow
from docstore.services import Services
from docstore.users.models import User
from docstore.webhooks import feed, network, signing
from docstore.webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

BATCH = 100  # webhooks (and redeliveries) looked at per pass
PER_WEBHOOK = 100  # changes one webhook may send in one pass
PASS_SECONDS = 60.0  # a pass stops starting deliveries after this long
USER_AGENT = "docstore-webhooks/1"


def retry_delay(settings: Settings, failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt at the same change."""
    base = settings.webhook_retry_base_seconds
    return float(min(settings.webhook_retry_max_seconds, base * 2 ** min(failures - 1, 30)))


@dataclass(frozen=True)
class Attempt:
    """What one delivery sends, read in its first transaction."""

    delivery_id: int
    webhook_id: int
    seq: int
    url: str
    secret: str
    body: bytes


def body_of(webhook_id: int, change: dict[str, Any]) -> bytes:
    """The JSON a delivery carries: the change as the feed shows it, and the webhook."""
    return json.dumps({**change, "webhook_id": webhook_id}, separators=(",", ":")).encode()


def headers_for(attempt: Attempt, timestamp: int) -> dict[str, str]:
    """The request headers of one attempt, its signature included."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.HEADER: signing.signature(attempt.secret, timestamp, attempt.body),
        "Docstore-Webhook-Id": str(attempt.webhook_id),
        "Docstore-Delivery-Id": str(attempt.delivery_id),
    }


def send(settings: Settings, attempt: Attempt) -> network.Outcome:
    """Check the URL again (it may resolve elsewhere now) and POST to the checked address."""
    try:
        target = network.check(attempt.url, allow_private=settings.webhook_allow_private)
    except network.Refused as exc:
        return network.Outcome(None, str(exc), 0)
    return network.post(
        target,
        attempt.body,
        headers_for(attempt, int(time.time())),
        timeout=settings.webhook_timeout_seconds,
        max_response_bytes=settings.webhook_max_response_bytes,
    )


def deliver_due(svc: Services, *, now: datetime | None = None) -> dict[str, Any]:
    """One pass: every due webhook sends what it has queued, then queued redeliveries."""
    now = now or utcnow()
    stop_at = time.monotonic() + PASS_SECONDS
    with svc.database.transaction() as db:
        head = feed.head(db)
        due = db.scalars(
            select(Webhook.id)
            .where(
                Webhook.active.is_(True),
                Webhook.next_attempt_at <= now,
                Webhook.position < head,
            )
            .order_by(Webhook.next_attempt_at, Webhook.id)
            .limit(BATCH)
        ).all()
        manual = db.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.manual.is_(True))
            .order_by(WebhookDelivery.id)
            .limit(BATCH)
        ).all()
    summary = {"delivered": 0, "failed": 0, "redelivered": 0}
    # Webhooks in parallel (threads: each holds its own transactions, and none while it
    # waits for a receiver), each webhook's changes one after the other.
    if due:
        workers = min(svc.settings.webhook_concurrency, len(due))
        with ThreadPoolExecutor(workers, thread_name_prefix="webhook") as pool:
            for delivered, failed in pool.map(lambda i: _drain(svc, i, now, stop_at), due):
                summary["delivered"] += delivered
                summary["failed"] += failed
    for delivery_id in manual:
        if time.monotonic() > stop_at:
            break
        attempt = _redelivery(svc, delivery_id)
        if attempt is not None:
            outcome = send(svc.settings, attempt)
            _finish(svc, attempt.delivery_id, outcome)
            summary["redelivered"] += int(outcome.ok)
    return summary


def _drain(svc: Services, webhook_id: int, now: datetime, stop_at: float) -> tuple[int, int]:
    """Send the webhook's queued changes in order until one fails, the queue is empty or
    the pass is over; how many were delivered and failed."""
    delivered = failed = 0
    for _ in range(PER_WEBHOOK):
        if time.monotonic() > stop_at:
            break
        try:
            attempt = _next_attempt(svc, webhook_id, now)
            if attempt is None:
                break
            outcome = send(svc.settings, attempt)
            _record(svc, attempt, outcome)
        except Exception:  # one webhook's trouble (e.g. a lost database) spares the others
            log.exception("webhook %d: delivery pass failed", webhook_id)
            break
        if not outcome.ok:
            failed += 1
            break
        delivered += 1
    return delivered, failed


def _owner(db: Session, hook: Webhook) -> User | None:
    owner = db.get(User, hook.owner_id)
    return owner if owner is not None and owner.is_active else None


def _next_attempt(svc: Services, webhook_id: int, now: datetime) -> Attempt | None:
    """The webhook's next change to send, with its pending delivery row; None when the
    webhook is not due or has nothing to send (its position moves past what it skipped)."""
    with svc.database.transaction() as db:
        hook = db.scalar(select(Webhook).where(Webhook.id == webhook_id).with_for_update())
        if hook is None or not hook.active or hook.next_attempt_at > now:
            return None
        owner = _owner(db, hook)
        if owner is None:
            return None
        # A pending attempt left behind was cut short (the worker stopped mid-send): its
        # change was not acknowledged, so it is sent again now.
        db.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == hook.id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.manual.is_(False),
            )
            .values(status="failed", error="Interrupted: the worker stopped during the attempt.")
        )
        wanted = set(hook.events.split(","))
        changes, scanned = feed.visible_after(db, owner, hook.position, hook.folder_id)
        change = next((c for c in changes if c["op"] in wanted), None)
        if change is None:
            hook.position = max(hook.position, scanned)
            return None
        seq = int(change["seq"])
        hook.position = max(hook.position, seq - 1)  # what it skipped to get here
        row = WebhookDelivery(
            webhook_id=hook.id,
            change_seq=seq,
            attempt=hook.failures + 1,
            status="pending",
            manual=False,
            created_at=utcnow(),
        )
        db.add(row)
        db.flush()
        secret = signing.secret_for(svc.settings.resolved_secret_key(), hook.secret_salt)
        return Attempt(row.id, hook.id, seq, hook.url, secret, body_of(hook.id, change))


def _finish(svc: Services, delivery_id: int, outcome: network.Outcome) -> None:
    with svc.database.transaction() as db:
        _finish_row(db, delivery_id, outcome)


def _finish_row(db: Session, delivery_id: int, outcome: network.Outcome) -> None:
    db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            status="delivered" if outcome.ok else "failed",
            response_code=outcome.status,
            error=outcome.error[:500] if outcome.error else None,
            latency_ms=outcome.latency_ms,
            delivered_at=utcnow() if outcome.ok else None,
        )
    )


def _record(svc: Services, attempt: Attempt, outcome: network.Outcome) -> None:
    """The attempt's outcome; on success the webhook moves past the change, on failure it
    waits (doubling) or, past the retry window, is disabled with the reason."""
    settings = svc.settings
    with svc.database.transaction() as db:
        _finish_row(db, attempt.delivery_id, outcome)
        hook = db.scalar(select(Webhook).where(Webhook.id == attempt.webhook_id).with_for_update())
        if hook is None:
            return
        now = utcnow()
        if outcome.ok:
            hook.position = max(hook.position, attempt.seq)
            hook.failures, hook.failing_since, hook.next_attempt_at = 0, None, now
            return
        hook.failures += 1
        hook.failing_since = hook.failing_since or now
        window = timedelta(seconds=settings.webhook_retry_window_seconds)
        if now - hook.failing_since >= window:
            hook.active = False
            hook.disabled_reason = (
                f"Disabled at {now.isoformat(timespec='seconds')}: change {attempt.seq} "
                f"could not be delivered for {_span(window)} ({hook.failures} attempts; "
                f"last: {outcome.error}). Fix the receiver, then resume the webhook "
                "(PATCH active: true) to continue from that change."
            )[:500]
            log.warning("webhook %d disabled: %s", hook.id, outcome.error)
            return
        hook.next_attempt_at = now + timedelta(seconds=retry_delay(settings, hook.failures))


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"


def _redelivery(svc: Services, delivery_id: int) -> Attempt | None:
    """A queued redelivery's attempt, if its change is still visible to the owner (else
    the row fails with the reason)."""
    with svc.database.transaction() as db:
        row = db.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
        )
        if row is None or row.status != "pending":
            return None
        hook = db.get(Webhook, row.webhook_id)
        owner = _owner(db, hook) if hook is not None else None
        change = None
        if hook is not None and owner is not None:
            change = feed.change_at(db, owner, row.change_seq, hook.folder_id)
        if hook is None or change is None:
            row.status = "failed"
            row.error = "The change is no longer visible to the webhook's owner."
            return None
        secret = signing.secret_for(svc.settings.resolved_secret_key(), hook.secret_salt)
        row.attempt = 1
        return Attempt(row.id, hook.id, row.change_seq, hook.url, secret, body_of(hook.id, change))
