"""One byte range of a `Range` header, for the responses that Starlette's FileResponse
does not make (objects read through `BlobStore.open`: S3 through WebDAV, inline objects)."""

from __future__ import annotations


def answer_range(header: str, size: int, headers: dict[str, str]) -> tuple[int, int, int] | None:
    """How to answer a `Range` header over `size` bytes: (status, first, last byte), 206
    with its Content-Range put in `headers` for a single `bytes=` range, or 200 over the
    whole object (no header, several ranges or one that does not parse: a server may
    ignore a Range it does not serve); None for 416, a range that starts past the end
    (its Content-Range: `unsatisfiable(size)`)."""
    if not header.startswith("bytes=") or "," in header or size <= 0:
        return 200, 0, size - 1
    first, _, last = header[6:].strip().partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return 200, 0, size - 1
    if start < 0 or start >= size or start > end:
        return None
    end = min(end, size - 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return 206, start, end


def unsatisfiable(size: int) -> dict[str, str]:
    """The headers of a 416 answer over `size` bytes."""
    return {"Content-Range": f"bytes */{size}"}
