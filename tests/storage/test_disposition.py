"""Download headers that stay safe whatever name or type a user gave a file."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from docstore.storage.disposition import (
    MAX_FILENAME_BYTES,
    clip_filename,
    content_disposition,
    safe_content_type,
)


def parse(header: str) -> tuple[str, str]:
    """The ASCII fallback and the decoded filename* of a Content-Disposition value."""
    fallback = re.fullmatch(
        r"attachment; filename=\"([^\"\\]*)\"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)",
        header,
    )
    assert fallback, header
    return fallback.group(1), unquote(fallback.group(2), errors="strict")


@pytest.mark.parametrize(
    ("name", "ascii_name"),
    [
        ("report.pdf", "report.pdf"),
        ('a"b\r\nc ünï.txt', "a_b__c uni.txt"),
        ("back\\slash;semi/slash%20.txt", "back_slash_semi_slash_20.txt"),
        ("日本語.docx", "___.docx"),
        ("tab\there\x00nul\x7f.bin", "tab_here_nul_.bin"),
        ("", "download"),
        ("..", "download"),
    ],
)
def test_any_name_gives_a_safe_header_that_round_trips(name: str, ascii_name: str) -> None:
    header = content_disposition(name)
    assert header.isascii() and "\r" not in header and "\n" not in header
    fallback, exact = parse(header)
    assert fallback == ascii_name
    assert exact == (name or "download")


def test_a_very_long_name_is_cut_keeping_its_extension() -> None:
    name = "é" * 1000 + ".pdf"
    header = content_disposition(name)
    assert len(header) < 1200
    fallback, exact = parse(header)
    assert exact.endswith(".pdf") and exact.startswith("éé")
    assert len(exact.encode()) <= MAX_FILENAME_BYTES
    assert fallback.endswith(".pdf") and len(fallback) <= MAX_FILENAME_BYTES
    assert clip_filename("short.txt") == "short.txt"


def test_names_that_are_not_valid_unicode_do_not_break_the_header() -> None:
    fallback, exact = parse(content_disposition("bad\udc80name.txt"))
    assert exact == fallback == "bad?name.txt"


def test_only_attachment_or_inline() -> None:
    assert content_disposition("a.txt", "inline").startswith("inline; ")
    with pytest.raises(ValueError, match="must be 'attachment' or 'inline'"):
        content_disposition("a.txt", "attachment; evil=1")


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('multipart/mixed; boundary="a b"', 'multipart/mixed; boundary="a b"'),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",) * 2,
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("text/html\r\nSet-Cookie: a=b", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("text/plain; charset=ü", "application/octet-stream"),
    ],
)
def test_content_type_is_passed_only_when_well_formed(given: str | None, served: str) -> None:
    assert safe_content_type(given) == served
