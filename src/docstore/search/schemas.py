"""Search bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class SearchHit(BaseModel):
    """One found item. `snippet` is HTML: the matched words in <mark>, the rest escaped."""

    kind: Literal["document", "folder"]
    id: int
    name: str
    path: str
    mime_type: str | None
    size_bytes: int | None
    updated_at: datetime
    owner_id: int
    permission: str
    snippet: str
    score: float


class SearchPage(BaseModel):
    """A page of results, best first; `next_cursor` continues the same search."""

    items: list[SearchHit]
    next_cursor: str | None = None
