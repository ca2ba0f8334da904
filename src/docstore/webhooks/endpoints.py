"""Webhook endpoints: create (the secret shown once), list, show, update, delete, and the
delivery attempts with redelivery. Another user's webhook is 404."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from docstore.deps import DB, CurrentActor
from docstore.pagination import DEFAULT_LIMIT, MAX_LIMIT
from docstore.schemas import Id, problems
from docstore.webhooks import service
from docstore.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problems(400, 401, 404, 422),
)
def create_webhook(body: WebhookIn, actor: CurrentActor, db: DB) -> WebhookCreated:
    """Create a webhook; the answer holds its signing secret, shown this once."""
    return service.create(db, actor, body)


@router.get("", response_model=WebhookPage, responses=problems(400, 401))
def list_webhooks(
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> WebhookPage:
    """The caller's webhooks, oldest first."""
    items, next_cursor = service.list_mine(db, actor, limit, cursor)
    return WebhookPage(items=items, next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=problems(401, 404))
def get_webhook(webhook_id: Id, actor: CurrentActor, db: DB) -> WebhookOut:
    """One of the caller's webhooks; `disabled_reason` says why the server stopped it."""
    return service.get(db, actor, webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookOut, responses=problems(401, 404, 422))
def update_webhook(webhook_id: Id, body: WebhookPatch, actor: CurrentActor, db: DB) -> WebhookOut:
    """Pause or resume, change the events or the URL."""
    return service.update(db, actor, webhook_id, body)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 404)
)
def delete_webhook(webhook_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Delete a webhook; nothing more is sent."""
    service.delete(db, actor, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryPage, responses=problems(400, 401, 404)
)
def list_deliveries(
    webhook_id: Id,
    actor: CurrentActor,
    db: DB,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> DeliveryPage:
    """Every delivery attempt, newest first: status, response code, latency, error."""
    items, next_cursor = service.deliveries(db, actor, webhook_id, limit, cursor)
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=problems(401, 404),
)
def redeliver(webhook_id: Id, delivery_id: Id, actor: CurrentActor, db: DB) -> DeliveryOut:
    """Send a past delivery's change once more (if its owner can still see it)."""
    return service.redeliver(db, actor, webhook_id, delivery_id)
