"""Secrets: argon2id password hashes and opaque tokens kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the account does not exist, so both answers take as long.
_DUMMY_HASH = _hasher.hash("docstore-timing-equaliser")


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; spends the same time when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh opaque token with 256 bits from `secrets`."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The stored form of a high-entropy token (SHA-256 hex)."""
    return hashlib.sha256(token.encode()).hexdigest()
