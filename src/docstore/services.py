"""The process's long-lived resources, built once by the app factory or a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from docstore.cache import Cache, make_cache
from docstore.config import Settings
from docstore.db import Database
from docstore.storage.base import BlobStore
from docstore.storage.factory import make_blob_store
from docstore.storage.inline import InlineObjects

SERVICES_KEY = "docstore.services"


@dataclass
class Services:
    """Settings, database, blob store and cache: what services and jobs run against."""

    settings: Settings
    database: Database
    store: BlobStore
    cache: Cache
    # Read-only request transactions run on the event loop (deps.UnitOfWork.run, read_only).
    inline_reads: bool = field(init=False)
    # Per-process state a domain builds from these services on first use, by key (the
    # kit names no domain: sharing.runtime keeps its grant cache here).
    extensions: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Any session reaches these services through session.info (`for_session`).
        self.database.configure_sessions({SERVICES_KEY: self})
        self.inline_reads = self.database.local_reads and self.cache.kind == "memory"

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build every resource from the configuration (no module-level clients)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        pool: dict[str, Any] = (
            {
                "pool_size": settings.database_pool_size,
                "max_overflow": settings.database_max_overflow,
            }
            if url.startswith("postgresql")
            else {}
        )
        database = Database(url, **pool)
        store = make_blob_store(
            settings.resolved_storage_url,
            public_url=settings.resolved_public_url,
            secret_key=settings.resolved_secret_key(),
        )
        if store.kind == "local":  # reads inline objects even once new ones are turned off
            store = InlineObjects(store, database, settings.inline_object_max_bytes)
        return cls(settings, database, store, make_cache(settings.redis_url))

    def close(self) -> None:
        """Release connections."""
        self.database.dispose()


def for_session(db: Session) -> Services | None:
    """The services whose database handed out this session (None: a bare `Database`)."""
    svc = db.info.get(SERVICES_KEY)
    return svc if isinstance(svc, Services) else None
