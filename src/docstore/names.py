"""Item names: validation, normalisation, and finding a free name among siblings."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from docstore.errors import ValidationFailed

MAX_NAME_BYTES = 255


def clean_name(raw: str) -> str:
    """NFC-normalise a folder or document name and check the rules, or raise 422."""
    if not isinstance(raw, str):
        raise ValidationFailed("The name must be a string.")
    name = unicodedata.normalize("NFC", raw)
    if not name:
        raise ValidationFailed("The name must not be empty.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValidationFailed(f"The name must be at most {MAX_NAME_BYTES} bytes of UTF-8.")
    if name in (".", ".."):
        raise ValidationFailed("'.' and '..' are not valid names.")
    if "/" in name:
        raise ValidationFailed("The name must not contain '/'.")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValidationFailed("The name must not contain control characters.")
    if name != name.strip():
        raise ValidationFailed("The name must not start or end with whitespace.")
    return name


def split_ext(name: str) -> tuple[str, str]:
    """('report', '.pdf') for 'report.pdf'; a leading dot is part of the stem."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def unique_name(name: str, taken: Callable[[str], bool], fmt: str = "{stem} ({n}){ext}") -> str:
    """`name`, or the first `fmt` variant (n = 2, 3, ...) that `taken` says is free."""
    if not taken(name):
        return name
    stem, ext = split_ext(name)
    n = 2
    while True:
        candidate = fmt.format(stem=stem, n=n, ext=ext)
        if len(candidate.encode()) > MAX_NAME_BYTES:
            keep = MAX_NAME_BYTES - len(candidate.encode()) + len(stem.encode())
            stem = stem.encode()[: max(keep, 1)].decode("utf-8", "ignore")
            continue
        if not taken(candidate):
            return candidate
        n += 1
