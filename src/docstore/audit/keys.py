"""What makes the audit chain hard to rewrite from the database alone: a key the database
does not hold, and an append-only anchor of the chain's heads outside it.

- Seals and checkpoints are HMAC-SHA256 under the audit key (DOCSTORE_AUDIT_KEY, or a key
  file created with mode 0600 in the data directory on first start). Whoever can write the
  database but not read the key cannot compute a seal that verifies. Keep the key apart
  from database backups: a backup with its key is a backup that can be rewritten.
- Every sealing pass appends `(id, seal, count, time)` of the head it sealed to the anchor
  file (one JSON line each, signed with the key). `docstore audit verify --anchor` checks
  that every anchored head is still in the chain with the same seal: deleting the newest
  entries or rewriting the log with a stolen key is then visible too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docstore.config import Settings
    from docstore.services import Services

log = logging.getLogger(__name__)

KEY_FILE = "audit_key"
ANCHOR_FILE = "audit-anchor.jsonl"


def load_or_create_key(path: Path) -> bytes:
    """The key kept in `path`, created (32 random bytes, hex, mode 0600) when absent.

    Written to a private temporary file and linked into place, so two processes starting
    at once agree on one key and nobody ever reads a half-written or world-readable one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: theirs
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"the audit key in {path} is too short (at least 32 characters)")
    return key.encode()


@dataclass(frozen=True)
class AnchorRecord:
    """A sealed head as the anchor recorded it."""

    id: int
    seal: str
    count: int
    time: str
    line: int = 0


class FileAnchor:
    """An append-only file of signed head records, one JSON line per sealing pass."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, line: str) -> None:
        """Append one line durably (O_APPEND: concurrent writers never interleave a line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def lines(self) -> Iterator[str]:
        """Every line, oldest first (none when the file does not exist)."""
        try:
            f = self.path.open()
        except FileNotFoundError:
            return
        with f:
            yield from f

    def is_empty(self) -> bool:
        """Whether nothing was ever anchored here."""
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True


@dataclass(frozen=True)
class Signer:
    """The audit key and the anchor: seals entries, signs checkpoints, anchors heads."""

    key: bytes
    anchor: FileAnchor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        """The configured key (created on first use) and anchor file."""
        if settings.audit_key:
            if len(settings.audit_key) < 32:
                raise ValueError("DOCSTORE_AUDIT_KEY must be at least 32 characters")
            key = settings.audit_key.encode()
        else:
            key = load_or_create_key(settings.data_dir / KEY_FILE)
        anchor_path = settings.audit_anchor_file or settings.data_dir / ANCHOR_FILE
        return cls(key, FileAnchor(anchor_path))

    def mac(self, *parts: str | bytes) -> str:
        """HMAC-SHA256 of the parts, each length-prefixed (no two tuples share an input)."""
        h = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        return h.hexdigest()

    def sign_checkpoint(self, kind: str, last_id: int, seal: str) -> str:
        """The signature of a checkpoint: which kind, up to which entry, with which seal."""
        return self.mac("checkpoint", kind, str(last_id), seal)

    def checkpoint_ok(self, kind: str, last_id: int, seal: str, mac: str | None) -> bool:
        """Whether a stored checkpoint carries a signature made with this key."""
        return mac is not None and hmac.compare_digest(
            mac, self.sign_checkpoint(kind, last_id, seal)
        )

    def _record_mac(self, entry_id: int, seal: str, count: int, time: str) -> str:
        return self.mac("anchor", str(entry_id), seal, str(count), time)

    def anchor_head(self, entry_id: int, seal: str, count: int) -> None:
        """Append the head a sealing pass just committed; a failure is logged, not raised
        (the seals are committed; verify --anchor checks the heads that were anchored)."""
        if self.anchor is None:
            return
        time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        record = {
            "id": entry_id,
            "seal": seal,
            "count": count,
            "time": time,
            "mac": self._record_mac(entry_id, seal, count, time),
        }
        try:
            self.anchor.append(json.dumps(record, separators=(",", ":")))
        except OSError:
            log.exception("audit: could not append head #%d to the anchor", entry_id)

    def anchored(self) -> Iterator[AnchorRecord | int]:
        """The anchor's records in file order; the line number of each line that is not a
        record signed with this key (damaged or forged)."""
        if self.anchor is None:
            return
        for n, text in enumerate(self.anchor.lines(), start=1):
            try:
                raw = json.loads(text)
                rec = AnchorRecord(
                    int(raw["id"]), str(raw["seal"]), int(raw["count"]), str(raw["time"]), n
                )
                good = hmac.compare_digest(
                    str(raw["mac"]), self._record_mac(rec.id, rec.seal, rec.count, rec.time)
                )
            except (ValueError, KeyError, TypeError):
                good = False
            if good:
                yield rec
            else:
                yield n


SIGNER_KEY = "audit.signer"


def signer_for(svc: Services) -> Signer:
    """The process's audit key and anchor, built from its settings on first use and kept in
    `Services.extensions` (the kit names no domain). The key file is created on first use."""
    found = svc.extensions.get(SIGNER_KEY)
    if not isinstance(found, Signer):
        found = svc.extensions.setdefault(SIGNER_KEY, Signer.from_settings(svc.settings))
    return found
