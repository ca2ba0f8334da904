"""The mail domain's background job, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.mail.delivery import deliver_due
from docstore.services import Services


def deliver_mail(svc: Services) -> dict[str, Any]:
    """Send the outbox's due messages (docstore.mail.delivery)."""
    return deliver_due(svc)


# Every 5 s, and at once when an enqueue commits: it wakes this process's worker for this job
# (docstore.jobs.wake), so mail leaves within a second in embedded mode; an external
# `docstore worker` sends it within the interval.
DELIVER_MAIL = register(Job("mail.deliver", 5.0, deliver_mail))
