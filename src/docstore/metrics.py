"""Prometheus counters the code increments as things happen (the kit: any layer may count).

What is read from the database when scraped (open upload sessions, the jobs' last runs,
the pool) is collected by `docstore.ops.metrics` instead. Labels are bounded: a route is
its template (`/api/v1/documents/{document_id}`), never the raw path.

With several server processes (`serve --workers N`) every process counts on its own; set
PROMETHEUS_MULTIPROC_DIR to an empty directory before start (prometheus-client's
multiprocess mode) and /metrics adds up the processes' files (README "Monitoring").
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "docstore_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "docstore_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECEIVED = Counter("docstore_http_received_bytes", "Request body bytes received.", ["route"])
SENT = Counter("docstore_http_sent_bytes", "Response body bytes sent.", ["route"])
UPLOADED = Counter("docstore_uploaded_bytes", "Bytes stored as new document versions.")
DOWNLOADED = Counter(
    "docstore_downloaded_bytes",
    "Document bytes served by docstore itself (local storage's signed URLs, WebDAV); "
    "downloads from S3 go to the bucket directly and are not seen.",
)
DEDUP_SAVED = Counter(
    "docstore_dedup_saved_bytes", "Bytes not stored again because an identical blob existed."
)
QUOTA_REJECTIONS = Counter("docstore_quota_rejections", "Requests refused for quota (507).")
PERMISSION_CACHE = Counter(
    "docstore_permission_cache_lookups", "Permission cache lookups by result.", ["result"]
)
STORAGE_READ = Counter(
    "docstore_storage_read_bytes",
    "Object bytes the server read back from S3 itself (WebDAV, search, merges, the "
    "verification job, uploads without part checksums); an upload with part checksums "
    "reads none.",
)
STORAGE_ERRORS = Counter("docstore_storage_errors", "Requests failed by a storage error.")
