"""Webhook bodies: events are the change feed's op names."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from docstore.changes.schemas import OpName
from docstore.schemas import BodyId

# A webhook subscribes to some of the change feed's ops (API.md "Changes"), in its order.
Event = OpName
EVENTS: tuple[str, ...] = get_args(OpName)


def _unique(events: list[Event]) -> list[Event]:
    if len(set(events)) != len(events):
        raise ValueError("each event may be named once")
    return sorted(events, key=EVENTS.index)


class WebhookIn(BaseModel):
    """A new webhook: the URL (http or https, a public address), the ops it wants, and
    optionally the folder whose subtree it is about (default: everything the owner sees)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[Event] = Field(min_length=1, max_length=len(EVENTS))
    folder_id: BodyId | None = None

    _events = field_validator("events")(_unique)


class WebhookPatch(BaseModel):
    """Pause (`active: false`) or resume (`active: true`, which also re-enables a webhook
    the server disabled), change its events or its URL."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    events: list[Event] | None = Field(None, min_length=1, max_length=len(EVENTS))
    url: str | None = Field(None, min_length=1, max_length=2000)

    @field_validator("events")
    @classmethod
    def _events(cls, events: list[Event] | None) -> list[Event] | None:
        return None if events is None else _unique(events)


class WebhookOut(BaseModel):
    """A webhook as its owner sees it (never its secret, except once at creation)."""

    id: int
    url: str
    events: list[str]
    folder_id: int | None
    active: bool
    disabled_reason: str | None = Field(
        None, description="Why the server disabled it (null when active or paused by its owner)"
    )
    failures: int = Field(description="Failed attempts at the oldest undelivered change")
    next_attempt_at: datetime | None = Field(None, description="When a retry is due")
    created_at: datetime


class WebhookCreated(WebhookOut):
    """The new webhook with its signing secret: shown this once."""

    secret: str


class WebhookPage(BaseModel):
    """A page of the caller's webhooks, oldest first."""

    items: list[WebhookOut]
    next_cursor: str | None = None


class DeliveryOut(BaseModel):
    """One attempt to deliver one change."""

    id: int
    change_seq: int
    attempt: int
    status: Literal["pending", "delivered", "failed"]
    response_code: int | None
    error: str | None
    latency_ms: int | None
    redelivery: bool
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    """A page of a webhook's delivery attempts, newest first."""

    items: list[DeliveryOut]
    next_cursor: str | None = None
