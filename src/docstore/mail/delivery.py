"""Delivery of the outbox: over SMTP (`DOCSTORE_SMTP_URL`), or, by default, as .eml files
under DATA_DIR/mail/ with the subject and link logged (a single machine needs no mail
server: the admin hands the link over).

A failed attempt is retried with a doubling delay (30 s up to an hour) for about a day
(MAX_ATTEMPTS), then the message is marked `failed` (still listed by `docstore mail ls`).
Messages are read in one transaction, sent with none open, and each outcome recorded in a
transaction of its own (docs/DEVELOPING.md, "Transactions").
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select, update

from docstore.config import Settings
from docstore.db import utcnow
from docstore.mail.models import OutboxMail
from docstore.services import Services

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0
BATCH = 100
_URL = re.compile(r"https?://\S+")


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    return float(min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 20)))


@dataclass(frozen=True)
class Message:
    """What the job read from one outbox row."""

    id: int
    to: str
    subject: str
    text: str
    html: str
    attempts: int


def build(settings: Settings, message: Message) -> EmailMessage:
    """The MIME message: plain text with an HTML alternative."""
    msg = EmailMessage()
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    msg["Subject"] = message.subject
    msg["From"] = settings.mail_from
    msg["To"] = message.to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(f"mail{message.id}", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    return msg


class Transport(Protocol):
    """Where messages go; a context manager holding its connection for one batch."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, message: Message, mime: EmailMessage) -> str:
        """Deliver one message; where it went. Raises on failure."""
        ...


@dataclass(frozen=True)
class SmtpTarget:
    """A parsed DOCSTORE_SMTP_URL."""

    host: str
    port: int
    tls: bool  # smtps: TLS from the first byte
    starttls: bool
    username: str | None
    password: str | None
    timeout: float

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """`smtp://user:pass@host:587?starttls=true`, `smtps://user:pass@host:465`."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("DOCSTORE_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        starttls = query.get("starttls", "false").lower() in ("1", "true", "yes")
        port = parts.port or (465 if tls else 587 if starttls else 25)
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=float(query.get("timeout", "10")),
        )


class SmtpTransport:
    """One SMTP connection per batch (stdlib smtplib)."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self.conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                self.conn.close()
            self.conn = None

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        if t.tls:
            conn = smtplib.SMTP_SSL(t.host, t.port, timeout=t.timeout, context=context)
        else:
            conn = smtplib.SMTP(t.host, t.port, timeout=t.timeout)
            if t.starttls:
                conn.starttls(context=context)
        if t.username:
            conn.login(t.username, t.password or "")
        return conn

    def send(self, message: Message, mime: EmailMessage) -> str:
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.send_message(mime)
        except (smtplib.SMTPServerDisconnected, OSError):
            self.conn = None  # reconnect for the next message
            raise
        return f"smtp://{self.target.host}:{self.target.port}"


class FileTransport:
    """The embedded default: DATA_DIR/mail/<id>.eml (mode 0600), subject and link logged."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> FileTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: Message, mime: EmailMessage) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = eml_path(self.folder, message.id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(mime.as_bytes())
        tmp.replace(path)
        found = _URL.search(message.text)
        log.warning(
            "mail %d to %s: %s%s (no DOCSTORE_SMTP_URL: written to %s)",
            message.id,
            message.to,
            message.subject,
            f" — {found.group(0)}" if found else "",
            path,
        )
        return str(path)


def eml_path(folder: Path, mail_id: int) -> Path:
    """Where the embedded default writes mail `mail_id`."""
    return folder / f"{mail_id:08d}.eml"


def mail_folder(settings: Settings) -> Path:
    """DATA_DIR/mail."""
    return settings.data_dir / "mail"


def transport_for(settings: Settings) -> SmtpTransport | FileTransport:
    """SMTP when DOCSTORE_SMTP_URL is set, else .eml files."""
    if settings.smtp_url:
        return SmtpTransport(SmtpTarget.parse(settings.smtp_url))
    return FileTransport(mail_folder(settings))


def deliver_due(
    svc: Services, *, now: datetime | None = None, limit: int = BATCH
) -> dict[str, Any]:
    """Send the messages whose turn has come; a summary for the job log."""
    now = now or utcnow()
    with svc.database.transaction() as db:
        rows = db.scalars(
            select(OutboxMail)
            .where(OutboxMail.status == "pending", OutboxMail.next_attempt_at <= now)
            .order_by(OutboxMail.id)
            .limit(limit)
        ).all()
        batch = [
            Message(r.id, r.to_address, r.subject, r.body_text, r.body_html, r.attempts)
            for r in rows
        ]
    sent = failed = 0
    if not batch:
        return {"sent": 0, "failed": 0}
    try:
        transport = transport_for(svc.settings)
    except ValueError as exc:
        for message in batch:
            _failed(svc, message, now, str(exc))
        return {"sent": 0, "failed": len(batch)}
    with transport:
        for message in batch:
            try:
                where = transport.send(message, build(svc.settings, message))
            except Exception as exc:  # any failure is retried later; the reason is kept
                log.warning("mail %d to %s not sent: %s", message.id, message.to, exc)
                _failed(svc, message, now, f"{type(exc).__name__}: {exc}")
                failed += 1
                continue
            _sent(svc, message, where)
            sent += 1
    return {"sent": sent, "failed": failed}


def _sent(svc: Services, message: Message, where: str) -> None:
    with svc.database.transaction() as db:
        db.execute(
            update(OutboxMail)
            .where(OutboxMail.id == message.id, OutboxMail.status == "pending")
            .values(
                status="sent",
                sent_at=utcnow(),
                attempts=message.attempts + 1,
                delivered_to=where[:1000],
                last_error=None,
                # The bodies may hold a single-use link: the recipient has it now.
                body_text="",
                body_html="",
            )
        )


def _failed(svc: Services, message: Message, now: datetime, error: str) -> None:
    attempts = message.attempts + 1
    gave_up = attempts >= MAX_ATTEMPTS
    with svc.database.transaction() as db:
        db.execute(
            update(OutboxMail)
            .where(OutboxMail.id == message.id, OutboxMail.status == "pending")
            .values(
                status="failed" if gave_up else "pending",
                attempts=attempts,
                last_error=error[:500],
                next_attempt_at=now + timedelta(seconds=retry_delay(attempts)),
            )
        )
