"""Text extraction for the content index: plain text, Markdown, CSV, HTML, PDF, DOCX, ODT.

`extract(data, mime, name, limits)` returns the text (at most `limits.text_chars`) or
raises `ExtractionError` with a reason people can read; `Unsupported` for other types.
Zip formats are checked against `limits.unzipped_bytes` before they are opened.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser

from docstore.search.service import MARK_END, MARK_START


class ExtractionError(Exception):
    """The file's text could not be read (the reason is shown as index_status failed)."""


class Unsupported(Exception):
    """Not a type whose text is indexed (index_status skipped)."""


@dataclass(frozen=True)
class Limits:
    text_chars: int
    unzipped_bytes: int


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
_BY_EXTENSION = {
    "txt": "text/plain",
    "text": "text/plain",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "htm": "text/html",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": DOCX,
    "odt": ODT,
}


def kind_of(mime: str, name: str) -> str | None:
    """The extractor's type for a document, by its extension, else its MIME type."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    mime = mime.split(";")[0].strip().lower()
    if mime in _EXTRACTORS:
        return mime
    return "text/plain" if mime.startswith("text/") else None


def clean(text: str, limit: int) -> str:
    """At most `limit` characters, without NULs (PostgreSQL text refuses them) or the
    snippet marks."""
    text = text[:limit]
    return text.replace("\x00", " ").replace(MARK_START, " ").replace(MARK_END, " ")


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def _text(data: bytes, limits: Limits) -> str:
    return _decode(data[: limits.text_chars * 4])


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "template", "noscript"})

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping and self.size < self.limit:
            self.parts.append(data)
            self.size += len(data)


def _html(data: bytes, limits: Limits) -> str:
    parser = _HtmlText(limits.text_chars)
    parser.feed(_decode(data))
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def _joined(parts: Iterable[str], limit: int) -> str:
    out: list[str] = []
    size = 0
    for part in parts:
        out.append(part)
        size += len(part) + 1
        if size >= limit:
            break
    return "\n".join(out)


def _pdf(data: bytes, limits: Limits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("encrypted PDF")
        return _joined((page.extract_text() or "" for page in reader.pages), limits.text_chars)
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        raise ExtractionError(f"unreadable PDF: {exc}") from exc


def _check_zip(data: bytes, limits: Limits) -> None:
    """Refuse a zip that expands past the limit (declared sizes bound what zipfile reads)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"not a valid zip container: {exc}") from exc
    if total > limits.unzipped_bytes:
        raise ExtractionError(
            f"expands to {total} bytes, more than the {limits.unzipped_bytes} allowed (zip bomb?)"
        )


def _docx(data: bytes, limits: Limits) -> str:
    _check_zip(data, limits)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many kinds on a damaged file
        raise ExtractionError(f"unreadable DOCX: {exc}") from exc

    def parts() -> Iterable[str]:
        for paragraph in document.paragraphs:
            yield paragraph.text
        for table in document.tables:
            for row in table.rows:
                yield " ".join(cell.text for cell in row.cells)

    return _joined(parts(), limits.text_chars)


def _odt(data: bytes, limits: Limits) -> str:
    _check_zip(data, limits)
    from odf import teletype
    from odf.opendocument import load
    from odf.text import H, P

    try:
        document = load(io.BytesIO(data))
        elements = [*document.getElementsByType(H), *document.getElementsByType(P)]
    except Exception as exc:  # odfpy raises many kinds on a damaged file
        raise ExtractionError(f"unreadable ODT: {exc}") from exc
    return _joined((teletype.extractText(e) for e in elements), limits.text_chars)


_EXTRACTORS: dict[str, Callable[[bytes, Limits], str]] = {
    "text/plain": _text,
    "text/markdown": _text,
    "text/x-markdown": _text,
    "text/csv": _text,
    "text/html": _html,
    "application/xhtml+xml": _html,
    "application/pdf": _pdf,
    DOCX: _docx,
    ODT: _odt,
}


def extract(data: bytes, kind: str, limits: Limits) -> str:
    """The text of a file of extractor type `kind` (see `kind_of`), cleaned and capped."""
    extractor = _EXTRACTORS.get(kind)
    if extractor is None:
        raise Unsupported(kind)
    return clean(extractor(data, limits), limits.text_chars)
