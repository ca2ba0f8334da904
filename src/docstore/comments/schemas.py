"""Comment bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from docstore.schemas import BodyId


class CommentIn(BaseModel):
    """A new comment, optionally about one version of the document."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=10_000)
    version_id: BodyId | None = None


class CommentOut(BaseModel):
    """A comment as the API shows it."""

    id: int
    document_id: int
    author_id: int | None
    body: str
    created_at: datetime
    version_id: int | None


class CommentPage(BaseModel):
    """A page of comments, oldest first."""

    items: list[CommentOut]
    next_cursor: str | None = None
