"""Three-way merge of text versions with merge3, blind to line-ending and final-newline noise."""

from __future__ import annotations

from dataclasses import dataclass

from merge3 import Merge3

TEXT_TYPES = {
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-javascript",
    "application/typescript",
    "application/x-sh",
    "application/x-python",
    "application/x-python-code",
    "application/sql",
    "application/toml",
    "application/yaml",
    "application/x-yaml",
    "application/x-httpd-php",
    "application/xhtml+xml",
    "image/svg+xml",
}
TEXT_SUFFIXES = ("+json", "+xml")


def is_text_type(mime_type: str) -> bool:
    """Whether the MIME type names a text format we may merge line by line."""
    mime = mime_type.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith(TEXT_SUFFIXES)


@dataclass(frozen=True)
class _Text:
    lines: list[str]  # each ends with "\n"
    crlf: bool
    final_newline: bool


def _split(data: bytes) -> _Text:
    text = data.decode("utf-8")  # UnicodeDecodeError: not UTF-8 text
    crlf = "\r\n" in text
    text = text.replace("\r\n", "\n")
    final = text.endswith("\n") or text == ""
    if text and not final:
        text += "\n"
    return _Text(text.splitlines(keepends=True), crlf, final)


def _pick(base: bool, current: bool, incoming: bool) -> bool:
    """Three-way choice for a flag: whoever changed it from the base wins."""
    return incoming if incoming != base else current


@dataclass(frozen=True)
class MergeResult:
    """The merged bytes, or how many regions conflict."""

    data: bytes | None
    conflicts: int


def merge_texts(base: bytes, current: bytes, incoming: bytes) -> MergeResult:
    """Merge `incoming` into `current` given their common `base` (all UTF-8 text)."""
    b, c, i = _split(base), _split(current), _split(incoming)
    m = Merge3(b.lines, c.lines, i.lines)
    conflicts = sum(1 for region in m.merge_regions() if region[0] == "conflict")
    if conflicts:
        return MergeResult(None, conflicts)
    text = "".join(m.merge_lines())
    if not _pick(b.final_newline, c.final_newline, i.final_newline) and text.endswith("\n"):
        text = text[:-1]
    if _pick(b.crlf, c.crlf, i.crlf):
        text = text.replace("\n", "\r\n")
    return MergeResult(text.encode("utf-8"), 0)
