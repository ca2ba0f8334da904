"""The process's long-lived resources, built once by the app factory or a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from docstore.audit.group_commit import GroupCommit
from docstore.audit.keys import Signer
from docstore.cache import Cache, make_cache
from docstore.config import Settings
from docstore.db import Database
from docstore.sharing.runtime import bind as bind_sharing
from docstore.storage.base import BlobStore
from docstore.storage.factory import make_blob_store


@dataclass
class Services:
    """Settings, database, blob store and cache: what services and jobs run against, and
    the group commit that writes the audit entries of read requests."""

    settings: Settings
    database: Database
    store: BlobStore
    cache: Cache
    audit_log: GroupCommit = field(init=False)
    # Read-only request transactions run on the event loop (deps.in_request_read).
    inline_reads: bool = field(init=False)

    def __post_init__(self) -> None:
        # Sessions find the permission cache and link rate limits through session.info.
        bind_sharing(self.database, self.cache)
        self.audit_log = GroupCommit(self.database)
        self.inline_reads = self.database.local_reads and self.cache.kind == "memory"

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build every resource from the configuration (no module-level clients)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.resolved_database_url)
        store = make_blob_store(
            settings.resolved_storage_url,
            public_url=settings.resolved_public_url,
            secret_key=settings.resolved_secret_key(),
        )
        return cls(settings, database, store, make_cache(settings.redis_url))

    @cached_property
    def audit_signer(self) -> Signer:
        """The audit key and anchor (the key file is created on first use)."""
        return Signer.from_settings(self.settings)

    def close(self) -> None:
        """Release connections."""
        self.database.dispose()
