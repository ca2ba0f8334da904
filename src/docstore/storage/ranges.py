"""One byte range of a `Range` header, for the responses that Starlette's FileResponse
does not make (objects read through `BlobStore.open`: S3 through WebDAV, inline objects)."""

from __future__ import annotations

UNSATISFIABLE = "unsatisfiable"


def byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a single `bytes=` range within `size` bytes; UNSATISFIABLE
    (416) when it starts past the end; None for the whole object: no header, several
    ranges or one that does not parse (a server may ignore a Range it does not serve)."""
    if not header.startswith("bytes=") or "," in header or size <= 0:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or start > end:
        return UNSATISFIABLE
    return start, min(end, size - 1)
