"""Settings: one pydantic-settings class read from DOCSTORE_* environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; defaults are the embedded single-machine mode."""

    model_config = SettingsConfigDict(env_prefix="DOCSTORE_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    storage_url: str | None = None
    redis_url: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    public_url: str | None = None
    open_signup: bool = True
    # Whether sharing with an address that has no account mails it an invitation. Unset:
    # as open_signup (a closed server takes new people only through an admin's invitation,
    # POST /admin/invitations); a share to such an address is kept pending either way.
    sharing_invites: bool | None = None
    # Mail (docstore.mail): unset SMTP URL = each mail is written as an .eml file under
    # DATA_DIR/mail/ and its subject and link logged. smtp://user:pass@host:587?starttls=true
    # or smtps://user:pass@host:465.
    smtp_url: str | None = None
    mail_from: str = "docstore <docstore@localhost>"
    # Shown in mail subjects and bodies.
    instance_name: str = "docstore"
    # True: an account whose address is not verified may only sign in, verify, ask for a
    # new link and sign out (403 `email_unverified` for anything else).
    require_verified_email: bool = False
    # HMAC key for the local store's signed URLs; several processes must share it.
    # Unset: a random key is created once and kept in DATA_DIR/secret_key.
    secret_key: str | None = None

    token_ttl_seconds: int = 30 * 24 * 3600
    # Lifetime of signed download URLs. On local storage a URL handed out through a share or
    # a link is checked against that share again when served; on S3 it is not (README).
    signed_url_ttl_seconds: int = Field(300, ge=1, le=7 * 24 * 3600)
    # Failed logins (users/login_limits.py): per client address, a hard limit in a window;
    # per account, a few free failures, then a wait that doubles with each failure, capped.
    login_max_failures_per_address: int = Field(10, ge=1)
    login_address_window_seconds: int = Field(30 * 60, ge=1)
    login_free_failures_per_account: int = Field(5, ge=0)
    login_account_backoff_seconds: float = Field(1.0, gt=0)
    login_account_backoff_max_seconds: float = Field(300.0, gt=0)
    login_account_window_seconds: int = Field(24 * 3600, ge=1)
    # Wrong link passwords (sharing/links.py): a hard limit per link and client address and
    # per address across links, in a window; for the link as a whole a delay before each
    # try that doubles with every failure past a number, capped, so guessing from many
    # addresses slows down while a person who knows the password still gets in.
    link_password_max_failures: int = Field(10, ge=1)
    link_password_max_failures_per_address: int = Field(30, ge=1)
    link_password_window_seconds: int = Field(30 * 60, ge=1)
    link_password_backoff_after: int = Field(10, ge=0)
    link_password_backoff_seconds: float = Field(0.1, ge=0)
    link_password_backoff_max_seconds: float = Field(2.0, ge=0)
    simple_upload_max_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 5 * 1024**4
    # A WebDAV PUT streams to storage as one object: the largest body it takes (413 beyond).
    dav_max_put_bytes: int = Field(16 * 1024**3, ge=1)
    # Files of at most this many bytes that the server receives whole (a WebDAV PUT or a
    # simple upload of a small body) are kept in the database beside their rows, not as a
    # file each (storage.inline); local storage only; 0 turns it off.
    inline_object_max_bytes: int = Field(64 * 1024, ge=0, le=256 * 1024)
    upload_session_ttl_seconds: int = 24 * 3600
    # Open (live, unexpired) upload sessions one user may have; beyond, POST /uploads is 429.
    max_open_uploads: int = Field(100, ge=1)
    # Multipart part size; grown for very large files so no upload needs >10,000 parts.
    upload_part_size: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024**3)
    merge_max_bytes: int = 10 * 1024 * 1024
    # The blob verification job (uploads.verification) reads at most this many object
    # bytes per pass (one pass a minute): what it costs in storage reads and server CPU is
    # bounded however many S3 uploads arrive. 0 turns it off.
    blob_verify_bytes_per_run: int = Field(2 * 1024**3, ge=0)
    # POST /files/batch (documents.batch): files and bytes one request may carry (413
    # beyond, the whole request refused), and the largest single file in it (that file alone
    # fails, 413). A file is held in memory while it arrives: the per-file limit bounds what
    # one request holds.
    batch_max_files: int = Field(1000, ge=1)
    batch_max_bytes: int = Field(64 * 1024 * 1024, ge=1)
    batch_max_file_bytes: int = Field(8 * 1024 * 1024, ge=1)
    # Every request body (docstore.limits): JSON bodies over this are 413, and a body whose
    # next chunk takes longer than the timeout to arrive is refused (slow-loris).
    json_max_bytes: int = 1024 * 1024
    body_read_timeout_seconds: float = 60.0
    # Request heads (docstore.server): larger is 431, slower than this is disconnected.
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 30.0
    # Requests (and open connections) one server process takes at once; beyond, 503. The
    # worker-thread pool gets more tokens than this, so a request holding a database lock
    # always finds a thread to finish on (see app.lifespan).
    max_concurrent_requests: int = Field(1000, ge=1)
    trash_retention_days: int = 30
    # How long the change feed keeps its rows; an older cursor answers 410 cursor_expired.
    change_retention_days: int = Field(30, ge=1)
    audit_retention_days: int | None = None
    # HMAC key of the audit chain (docstore.audit.keys). Unset: created once in
    # DATA_DIR/audit_key (mode 0600). Keep it apart from database backups.
    audit_key: str | None = None
    # Append-only record of the chain's sealed heads; default DATA_DIR/audit-anchor.jsonl.
    audit_anchor_file: Path | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    # FastAPI's native OpenTelemetry spans, metrics and logs (exported through the providers
    # an operator configures). Off: every request skips the check for a configured provider,
    # which reads the environment several times (a few % of a listing's CPU).
    telemetry: bool = False
    # Run the background jobs inside `docstore serve` (embedded mode).
    run_jobs_in_server: bool = True
    # Background jobs (docstore.retention): how often each runs, how long a job's lease
    # lasts without a heartbeat, and the grace periods of blob garbage collection.
    job_poll_seconds: float = 30.0
    job_lease_seconds: int = 300
    # Override a registered job's interval by name, e.g. {"retention.versions": 3600}.
    job_intervals: dict[str, float] = Field(default_factory=dict)
    # An unreferenced blob is deleted this long after its last reference went away.
    blob_gc_grace_seconds: int = 3600
    # A pending blob (or an object with no blob row) this old is a crashed upload's leftover;
    # both must outlive the longest upload (upload_session_ttl_seconds).
    blob_pending_grace_seconds: int = 2 * 24 * 3600
    blob_orphan_grace_seconds: int = 2 * 24 * 3600

    # Stopping `docstore serve` (SIGTERM): /readyz answers 503 at once, the listener closes
    # after the delay (for balancers that poll /readyz), then the requests in flight get
    # up to the grace period to finish before they are cut.
    shutdown_delay_seconds: float = Field(0.0, ge=0)
    # PostgreSQL connections one process keeps (pool) and may add under load (overflow):
    # every process of a deployment together must stay under the server's max_connections.
    database_pool_size: int = Field(10, ge=1)
    database_max_overflow: int = Field(20, ge=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    # Webhooks (docstore.webhooks). Deliveries to loopback, private, link-local, shared,
    # multicast or cloud-metadata addresses are refused unless this is set (an admin whose
    # receivers live on the LAN; the tests' loopback receiver).
    webhook_allow_private: bool = False
    # One delivery's time limit (connect + response) and how much of a response is read.
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    webhook_max_response_bytes: int = Field(64 * 1024, ge=0)
    # A failed delivery is retried after base * 2^(failures-1) seconds (capped); when the
    # oldest undelivered change has failed for the retry window, the webhook is disabled.
    webhook_retry_base_seconds: float = Field(30.0, gt=0)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(24 * 3600.0, gt=0)
    webhook_max_per_user: int = Field(25, ge=1)
    # Webhooks the worker delivers to at once (each one's changes stay in order).
    webhook_concurrency: int = Field(4, ge=1, le=64)
    # GET /metrics (Prometheus): served only to a bearer of this token or to these
    # addresses/networks (e.g. ["127.0.0.1", "10.0.0.0/8"]); with neither it is 404.
    metrics_token: str | None = None
    metrics_allow: list[str] = Field(default_factory=list)
    # Search (docstore.search): the text kept per document version (the rest is not
    # indexed), the largest file read for its text, and how far a zip format (DOCX, ODT)
    # may expand before it counts as a zip bomb (index_status failed).
    search_text_max_mib: float = Field(1.0, gt=0, le=64)
    search_file_max_mib: float = Field(100.0, gt=0)
    search_unzipped_max_mib: float = Field(200.0, gt=0)

    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'docstore.db'}"

    @property
    def resolved_storage_url(self) -> str:
        """The blob store URL, defaulting to a folder in the data directory."""
        if self.storage_url:
            return self.storage_url
        return f"file://{self.data_dir.resolve() / 'blobs'}"

    @property
    def resolved_public_url(self) -> str:
        """Base of the signed URLs handed out (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def resolved_secret_key(self) -> bytes:
        """The HMAC key; created and persisted on first use when not configured."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Born 0600 (never readable by others, not even for a moment), under a name of
            # its own, then linked into place only if no other process got there first:
            # every process that starts on this data dir ends up with the same key.
            tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
