"""Search endpoint: GET /search."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from docstore.deps import DB, CurrentActor
from docstore.schemas import Id, problems
from docstore.search import service
from docstore.search.schemas import SearchPage

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchPage, responses=problems(400, 401, 404, 422))
def search(
    actor: CurrentActor,
    db: DB,
    q: str = Query(max_length=2000),
    folder_id: Id | None = None,
    kind: str | None = None,
    mime: str | None = Query(None, max_length=255),
    modified_after: datetime | None = None,
    owner: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=1000),
) -> SearchPage:
    """Documents and folders the caller can see whose name or text matches `q`: words (all
    must match), "exact phrase", -word, prefix*, name:word. Name matches first."""
    return service.search(
        db,
        actor,
        q,
        folder_id=folder_id,
        kind=kind,
        mime=mime,
        modified_after=modified_after,
        owner=owner,
        limit=limit,
        cursor=cursor,
    )
