"""The search domain's background job, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.search.indexing import index_pending
from docstore.services import Services

INDEX_JOB = "search.index"


def index_content(svc: Services) -> dict[str, Any]:
    """Extract and index the text of new current versions (at most ~20 s per pass)."""
    return index_pending(svc, budget_seconds=20.0).as_dict()


# Every 10 s, and at once when a new version commits (documents.service.add_version wakes
# this process's worker for it).
INDEX_CONTENT = register(Job(INDEX_JOB, 10.0, index_content))
