"""Item and display names: validation, normalisation, and the names the server builds
(restore suffixes, conflict copies), which pass the same checks as a name a user gives."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from docstore.errors import NameConflict, ValidationFailed

MAX_NAME_BYTES = 255
# Display names: the users.name column holds 200 characters.
MAX_DISPLAY_NAME_CHARS = 200
# How much of a display name a server-built item name carries (a conflict copy's "by <name>").
DISPLAY_NAME_IN_NAMES_BYTES = 64
# Bidi embedding/override (U+202A-U+202E) and isolate (U+2066-U+2069) controls reorder what a
# person sees: "invoice\u202efdp.exe" shows as "invoiceexe.pdf". Refused like control characters.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Numbered variants tried before giving up (each try is one indexed lookup).
MAX_NUMBERED = 10_000


def _forbidden(c: str) -> bool:
    """Control characters (C0, C1, DEL) and bidi controls are never part of a name."""
    return unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS


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
    if any(c in BIDI_CONTROLS for c in name):
        raise ValidationFailed("The name must not contain bidirectional override characters.")
    if name != name.strip():
        raise ValidationFailed("The name must not start or end with whitespace.")
    return name


def clean_display_name(raw: str) -> str:
    """NFC-normalise a person's display name and check it, or raise 422.

    Display names end up in item names the server builds (conflict copies), in the UI and
    in the audit log: no '/', no control, line-separator or bidi control characters.
    """
    if not isinstance(raw, str):
        raise ValidationFailed("The name must be a string.")
    name = unicodedata.normalize("NFC", raw)
    # Checked before the trim: a trailing newline or tab is refused, not silently cut (the
    # documented pattern refuses it, and a client that sent it should learn its name is bad).
    if any(_forbidden(c) or unicodedata.category(c) in ("Zl", "Zp") for c in name):
        raise ValidationFailed("The name must not contain control or bidi override characters.")
    name = name.strip()
    if not name:
        raise ValidationFailed("The name must not be empty.")
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        raise ValidationFailed(f"The name must be at most {MAX_DISPLAY_NAME_CHARS} characters.")
    if "/" in name:
        raise ValidationFailed("The name must not contain '/'.")
    return name


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that is at most `max_bytes` of UTF-8 (whole characters)."""
    if max_bytes <= 0:
        return ""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def display_name_for_names(name: str) -> str:
    """A display name as a server-built item name carries it: what `clean_display_name` would
    refuse (in a name stored before it existed) replaced by '_', cut to a few dozen bytes."""
    scrubbed = "".join(
        "_" if c == "/" or _forbidden(c) or unicodedata.category(c) in ("Zl", "Zp") else c
        for c in unicodedata.normalize("NFC", name)
    ).strip()
    if len(scrubbed.encode("utf-8")) > DISPLAY_NAME_IN_NAMES_BYTES:
        scrubbed = truncate_utf8(scrubbed, DISPLAY_NAME_IN_NAMES_BYTES - 3).rstrip() + "…"
    return scrubbed or "someone"


def fit_name(stem: str, suffix: str, ext: str = "") -> str:
    """`stem + suffix + ext` within MAX_NAME_BYTES, through `clean_name`.

    Only the base name is shortened (on a character boundary), never the suffix the server
    adds; an extension too long to keep whole counts as part of the base name.
    """
    room = MAX_NAME_BYTES - len((suffix + ext).encode("utf-8"))
    if ext and room < 1:
        stem, ext = stem + ext, ""
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    base = truncate_utf8(stem, room)
    if base != stem:
        base = base.rstrip() or base
    return clean_name(base + suffix + ext)


def split_ext(name: str) -> tuple[str, str]:
    """('report', '.pdf') for 'report.pdf'; a leading dot is part of the stem."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def free_name(
    stem: str,
    suffix: str,
    ext: str,
    taken: Callable[[str], bool],
    numbered: str = " ({n})",
) -> str:
    """`stem + suffix + ext`, else the first with `numbered` (n = 2, 3, ...) after the suffix
    that `taken` says is free; every candidate is fitted by `fit_name`."""
    candidate = fit_name(stem, suffix, ext)
    for n in range(2, MAX_NUMBERED + 2):
        if not taken(candidate):
            return candidate
        candidate = fit_name(stem, suffix + numbered.format(n=n), ext)
    raise NameConflict("No free name was found for this item.")


def unique_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name` as it is when free, else '<stem> (2)<ext>', '<stem> (3)<ext>', ..."""
    if not taken(name):
        return name
    stem, ext = split_ext(name)
    return free_name(stem, "", ext, lambda c: c == name or taken(c))
