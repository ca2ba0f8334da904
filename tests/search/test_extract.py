"""Every extractor on a real small file, and the failures: corrupt, encrypted, zip bomb."""

from __future__ import annotations

import io
import zipfile

import pytest
from pypdf import PdfReader, PdfWriter

from docstore.search.extract import DOCX, ODT, ExtractionError, Limits, extract, kind_of
from docstore.search.service import MARK_START
from tests.search import files

LIMITS = Limits(text_chars=1 << 20, unzipped_bytes=8 << 20)


def test_each_format_gives_its_text() -> None:
    assert "invoice 4711" in extract(files.pdf("Hello invoice 4711"), "application/pdf", LIMITS)
    text = extract(files.docx("Tender for bridges", "Deadline Friday"), DOCX, LIMITS)
    assert "Tender for bridges" in text and "Deadline Friday" in text
    text = extract(files.odt("Minutes", "Budget approved"), ODT, LIMITS)
    assert "Minutes" in text and "Budget approved" in text
    html = b"<html><head><style>p{}</style><script>var hidden=1</script></head>"
    html += b"<body><p>Caf&eacute; <b>menu</b></p></body></html>"
    text = extract(html, "text/html", LIMITS)
    assert text == "Café menu"
    assert extract(b"\xef\xbb\xbfname,city\nAda,London\n", "text/csv", LIMITS).startswith("name")
    assert extract("# Überschrift\n".encode(), "text/markdown", LIMITS) == "# Überschrift\n"
    # NULs (refused by PostgreSQL) and the snippet marks never reach the index.
    assert extract(f"a\x00b{MARK_START}c".encode(), "text/plain", LIMITS) == "a b c"


def test_text_is_capped() -> None:
    small = Limits(text_chars=10, unzipped_bytes=LIMITS.unzipped_bytes)
    assert extract(b"x" * 100, "text/plain", small) == "x" * 10
    assert len(extract(files.docx("a" * 50, "b" * 50), DOCX, small)) == 10


def test_types_are_told_by_extension_then_mime() -> None:
    assert kind_of("application/octet-stream", "Report.PDF") == "application/pdf"
    assert kind_of("text/x-python", "script.py") == "text/plain"
    assert kind_of("image/png", "photo.png") is None
    assert kind_of(DOCX, "noextension") == DOCX


def test_corrupt_encrypted_and_bomb_files_fail_with_a_reason() -> None:
    with pytest.raises(ExtractionError, match="PDF"):
        extract(b"%PDF-1.7\n" + b"\x00garbage" * 50, "application/pdf", LIMITS)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(files.pdf("secret plans"))))
    writer.encrypt(user_password="pw", owner_password="owner")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(ExtractionError, match="encrypted"):
        extract(locked.getvalue(), "application/pdf", LIMITS)
    with pytest.raises(ExtractionError, match="zip"):
        extract(b"PK\x03\x04 not really a zip", DOCX, LIMITS)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"\x00" * (9 << 20))
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ExtractionError, match="zip bomb"):
        extract(bomb.getvalue(), DOCX, LIMITS)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("content.xml", b"<not-odf")
    with pytest.raises(ExtractionError, match="ODT"):
        extract(broken.getvalue(), ODT, LIMITS)
