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


def answer_range(header: str, size: int, headers: dict[str, str]) -> tuple[int, int, int] | None:
    """How to answer a `Range` header over `size` bytes: (status, first, last byte), 206
    with its Content-Range put in `headers`, or 200 over the whole object; None for 416
    (its Content-Range: `unsatisfiable(size)`)."""
    wanted = byte_range(header, size)
    if wanted == UNSATISFIABLE:
        return None
    if isinstance(wanted, tuple):
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{size}"
        return 206, wanted[0], wanted[1]
    return 200, 0, size - 1


def unsatisfiable(size: int) -> dict[str, str]:
    """The headers of a 416 answer over `size` bytes."""
    return {"Content-Range": f"bytes */{size}"}
