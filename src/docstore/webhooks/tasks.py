"""The webhooks domain's background job, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.services import Services
from docstore.webhooks.delivery import deliver_due


def deliver_webhooks(svc: Services) -> dict[str, Any]:
    """Send what each webhook has queued (docstore.webhooks.delivery)."""
    return deliver_due(svc)


# Every 2 s (an idle pass is one query: no webhook is behind the outbox's head), and at once
# when a redelivery or a resume commits (docstore.jobs.wake, in that process).
DELIVER_WEBHOOKS = register(Job("webhooks.deliver", 2.0, deliver_webhooks))
