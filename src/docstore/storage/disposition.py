"""Response headers for downloads that are safe whatever the user named the file."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# A file name longer than this (in UTF-8 bytes) is cut, keeping its extension: most file
# systems refuse longer names, and header size limits in proxies are not far off.
MAX_FILENAME_BYTES = 255

# RFC 8187 attr-char minus ALPHA / DIGIT, which `quote` never escapes.
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"
# What may appear in the quoted ASCII fallback: printable ASCII but `"`, `\`, `%`
# (some browsers percent-decode it) and `/`, `;` (naive parsers split on them).
_FALLBACK_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%/;]')
_TCHARS = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE = re.compile(
    rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|\"[^\"\\\x00-\x1f\x7f]*\"))*"
)
DEFAULT_MEDIA_TYPE = "application/octet-stream"


def clip_filename(filename: str, max_bytes: int = MAX_FILENAME_BYTES) -> str:
    """The name as valid Unicode, cut to `max_bytes` of UTF-8 with its extension kept."""
    name = filename.encode("utf-8", "replace").decode("utf-8")
    if len(name.encode()) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    budget = max_bytes - len(suffix.encode())
    return stem.encode()[:budget].decode("utf-8", "ignore") + suffix


def _ascii_fallback(name: str) -> str:
    """An ASCII-only approximation of the name, fit for a quoted-string."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_name = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = clip_filename(_FALLBACK_UNSAFE.sub("_", ascii_name))
    return cleaned if cleaned.strip(" ._") else "download"


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition value with an ASCII `filename` and the exact UTF-8 `filename*`."""
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"disposition must be 'attachment' or 'inline', not {disposition!r}")
    name = clip_filename(filename) or "download"
    encoded = quote(name, safe=_ATTR_CHAR_SAFE, encoding="utf-8")
    return f"{disposition}; filename=\"{_ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"


def safe_content_type(content_type: str | None) -> str:
    """The media type if it is a well-formed header value, else application/octet-stream."""
    if content_type and _MEDIA_TYPE.fullmatch(content_type.strip()):
        return content_type.strip()
    return DEFAULT_MEDIA_TYPE
