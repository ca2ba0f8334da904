"""Webhook secrets and signatures.

The secret a webhook signs with is derived, not stored: `HMAC-SHA256(server secret key,
"docstore-webhook\\0" + salt)`, with a random salt kept on the row. The owner sees it once
(at creation); the server re-derives it for every delivery. A copy of the database alone
(a backup, a read-only SQL injection) therefore cannot forge deliveries, the same standard
as the local store's signed URLs (`DOCSTORE_SECRET_KEY`). The cost: rotating the server's
secret key changes every webhook's secret (owners re-create their webhooks).

A delivery carries `Docstore-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>"
under the secret>` (the Stripe/Svix convention; README "Webhooks" shows how to verify).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
HEADER = "Docstore-Signature"


def new_salt() -> str:
    """A fresh random salt for a webhook's secret."""
    return secrets.token_hex(32)


def secret_for(server_key: bytes, salt: str) -> str:
    """The webhook's signing secret (what its owner was shown)."""
    digest = hmac.new(server_key, b"docstore-webhook\0" + salt.encode(), hashlib.sha256)
    return PREFIX + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Docstore-Signature` header value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
