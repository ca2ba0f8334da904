"""URL signing of the local store: what a signed URL says, and checking it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from docstore.storage.disposition import clip_filename, safe_content_type
from docstore.storage.local.files import check_key


class SignatureError(Exception):
    """A signed URL was tampered with, signed with another key, or has expired."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_expiry(expires: str) -> int:
    try:
        return int(expires)
    except ValueError:
        raise SignatureError("the URL's signature is invalid") from None


class UrlSigning:
    """HMAC-SHA256 signed URLs served by docstore itself (storage/endpoints.py): downloads
    here, parts in `multipart`."""

    if TYPE_CHECKING:
        public_url: str
        _secret_key: bytes
        _clock: Callable[[], float]

    # -- downloads -----------------------------------------------------------------------

    def sign_download(
        self,
        key: str,
        expires_in: int,
        filename: str,
        content_type: str | None = None,
        grant: str | None = None,
    ) -> str:
        """A GET URL to this server's /storage/objects endpoint, valid for `expires_in` s;
        with a signed `grant` that the endpoint checks again before serving."""
        check_key(key)
        filename = clip_filename(filename)
        content_type = safe_content_type(content_type)
        expires = self._expiry(expires_in)
        signature = self._sign("download", key, expires, filename, content_type, *_opt(grant))
        query: dict[str, str | int] = {
            "key": key,
            "expires": expires,
            "filename": filename,
            "content_type": content_type,
        }
        if grant is not None:
            query["grant"] = grant
        query["signature"] = signature
        return f"{self.public_url}/storage/objects?{urlencode(query)}"

    def verify_download(
        self,
        key: str,
        expires: str,
        filename: str,
        content_type: str,
        signature: str,
        grant: str | None = None,
    ) -> None:
        """Check a download URL's signature, then its expiry; SignatureError when refused."""
        expires_at = _parse_expiry(expires)
        expected = self._sign("download", key, expires_at, filename, content_type, *_opt(grant))
        self._check_signature(expected, signature, expires_at)

    # -- signing -------------------------------------------------------------------------

    def _expiry(self, expires_in: int) -> int:
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        return int(self._clock()) + int(expires_in)

    def _sign(self, purpose: str, *fields: str | int | None) -> str:
        """HMAC-SHA256 over the purpose and fields, JSON-encoded so no two inputs collide."""
        message = json.dumps([purpose, *fields], ensure_ascii=True, separators=(",", ":"))
        return _b64url(hmac.new(self._secret_key, message.encode(), hashlib.sha256).digest())

    def _check_signature(self, expected: str, signature: str, expires_at: int) -> None:
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise SignatureError("the URL's signature is invalid")
        if self._clock() > expires_at:
            raise SignatureError("the URL has expired")


def _opt(grant: str | None) -> tuple[str, ...]:
    """A download's signed fields end with its grant, when it has one (none: as before)."""
    return () if grant is None else (grant,)
