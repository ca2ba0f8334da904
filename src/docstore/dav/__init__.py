"""WebDAV (class 1 and 2) at /dav/, over the same services as the HTTP API."""
