"""Mail: the outbox commits with its event, a real SMTP server on loopback receives it,
an outage only delays it, and without SMTP each mail is an .eml file the CLI shows."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from docstore.app import create_app
from docstore.cli.main import app as cli
from docstore.config import get_settings
from docstore.db import utcnow
from docstore.mail import service as mail
from docstore.mail.delivery import deliver_due, eml_path
from docstore.mail.models import OutboxMail
from docstore.services import Services
from tests.fixtures.app import BASE, Api, make_settings
from tests.fixtures.mail import SmtpSink, start_smtp, token_of
from tests.fixtures.server import free_port, start_server


def _api(settings_path: Path, database_url: str, **over: object) -> Iterator[Api]:
    settings = make_settings(settings_path, database_url, instance_name="Acme Docs", **over)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


def _svc(api: Api) -> Services:
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return svc


def _rows(svc: Services) -> list[OutboxMail]:
    with svc.database.transaction() as db:
        return list(db.scalars(select(OutboxMail).order_by(OutboxMail.id)))


@pytest.fixture
def smtp_api(tmp_path: Path, database_url: str, smtp: SmtpSink) -> Iterator[Api]:
    """The app sending through the loopback SMTP server."""
    yield from _api(tmp_path, database_url, smtp_url=smtp.url, mail_from="Acme <docs@acme.test>")


def test_sign_up_mail_goes_out_over_smtp_with_text_html_and_public_links(
    smtp_api: Api, smtp: SmtpSink
) -> None:
    ann = smtp_api.register("ann", verify=False)
    svc = _svc(smtp_api)
    assert smtp.to(ann.email) == []  # queued, not sent inside the request
    assert deliver_due(svc) == {"sent": 1, "failed": 0}
    (got,) = smtp.wait_for(ann.email)
    assert got.subject == "Confirm your email address for Acme Docs"
    assert got.message["From"] == "Acme <docs@acme.test>"
    link = got.link()
    assert link.startswith(f"{BASE}/verify-email?token=")
    assert link in got.text() and link.replace("&", "&amp;") in got.html()
    assert "Acme Docs" in got.html() and "<a href=" in got.html()
    (row,) = _rows(svc)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    assert row.body_text == "" and row.body_html == ""  # the link is not kept once delivered
    assert deliver_due(svc) == {"sent": 0, "failed": 0}  # nothing is sent twice
    r = smtp_api.client.post("/api/v1/auth/verify-email", json={"token": token_of(link)})
    assert r.status_code == 200 and r.json()["email_verified"] is True


def test_smtp_down_is_retried_later_and_nothing_is_lost(tmp_path: Path, database_url: str) -> None:
    port = free_port()  # nothing listens here yet
    for api in _api(tmp_path, database_url, smtp_url=f"smtp://127.0.0.1:{port}?timeout=5"):
        ann = api.register("ann", verify=False)
        bob = api.register("bob", verify=False)
        svc = _svc(api)
        now = utcnow()
        assert deliver_due(svc, now=now) == {"sent": 0, "failed": 2}
        rows = _rows(svc)
        assert [(r.status, r.attempts) for r in rows] == [("pending", 1), ("pending", 1)]
        assert all(r.last_error and r.next_attempt_at > now for r in rows)
        assert deliver_due(svc, now=now) == {"sent": 0, "failed": 0}  # backing off
        controller, sink = start_smtp(port)
        try:
            later = now + timedelta(hours=1)
            assert deliver_due(svc, now=later) == {"sent": 2, "failed": 0}
            assert len(sink.wait_for(ann.email)) == 1 and len(sink.wait_for(bob.email)) == 1
        finally:
            controller.stop()
        assert [(r.status, r.attempts) for r in _rows(svc)] == [("sent", 2), ("sent", 2)]


def test_a_rolled_back_action_sends_no_mail(smtp_api: Api, smtp: SmtpSink) -> None:
    svc = _svc(smtp_api)

    def queue_then_fail() -> None:
        with svc.database.transaction() as db:
            mail.enqueue(
                db,
                to="ghost@example.com",
                template="password_reset",
                context={"name": "G", "email": "ghost@example.com", "link": "x", "minutes": 30},
            )
            raise RuntimeError("the action failed after queueing its mail")

    with pytest.raises(RuntimeError):
        queue_then_fail()
    # An API action refused after its checks (email taken) queues nothing either.
    smtp_api.register("ann", verify=False)
    r = smtp_api.client.post(
        "/api/v1/auth/register",
        json={"email": "ann@example.com", "name": "Ann", "password": "another pass 1"},
    )
    assert r.status_code == 409
    assert deliver_due(svc) == {"sent": 1, "failed": 0}
    assert [m.rcpt_tos for m in smtp.messages] == [["ann@example.com"]]
    assert [r.to_address for r in _rows(svc)] == ["ann@example.com"]


def test_without_smtp_mail_is_an_eml_file_logged_and_shown_by_the_cli(
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for api in _api(tmp_path, database_url):
        ann = api.register("ann", verify=False)
        svc = _svc(api)
        with caplog.at_level(logging.WARNING, logger="docstore.mail.delivery"):
            assert deliver_due(svc) == {"sent": 1, "failed": 0}
        (row,) = _rows(svc)
        path = eml_path(svc.settings.data_dir / "mail", row.id)
        assert row.delivered_to == str(path) and path.is_file()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        raw = path.read_text()
        assert "Subject: Confirm your email address for Acme Docs" in raw
        logged = caplog.text
        assert "Confirm your email address for Acme Docs" in logged
        assert f"{BASE}/verify-email?token=" in logged
        # The CLI in-process (its own services, from the DOCSTORE_* environment).
        for key in [k for k in os.environ if k.startswith("DOCSTORE_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("DOCSTORE_DATA_DIR", str(svc.settings.data_dir))
        monkeypatch.setenv("DOCSTORE_DATABASE_URL", database_url)
        get_settings.cache_clear()
        try:
            runner = CliRunner()
            ls = runner.invoke(cli, ["mail", "ls", "--json"])
            assert ls.exit_code == 0, ls.output
            (listed,) = json.loads(ls.stdout)
            assert listed["id"] == row.id and listed["to"] == ann.email
            assert listed["status"] == "sent" and listed["subject"].startswith("Confirm")
            show = runner.invoke(cli, ["mail", "show", str(row.id)])
            assert show.exit_code == 0, show.output
            link = next(w for w in show.stdout.split() if w.startswith(f"{BASE}/verify-email"))
            r = api.client.post("/api/v1/auth/verify-email", json={"token": token_of(link)})
            assert r.status_code == 200
            assert runner.invoke(cli, ["mail", "show", "999999"]).exit_code == 3
        finally:
            get_settings.cache_clear()


@pytest.mark.e2e
def test_the_server_sends_a_sign_up_mail_by_itself(
    tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    """`docstore serve` with its in-process worker: the committed sign-up wakes the worker,
    whose mail job hands the message to the SMTP server; nobody runs a job by hand."""
    env = {"DOCSTORE_SMTP_URL": smtp.url, "DOCSTORE_INSTANCE_NAME": "Acme Docs"}
    server = start_server(tmp_path, database_url, env)
    try:
        body = {"email": "kim@example.com", "name": "Kim", "password": "kim's passphrase"}
        r = httpx.post(f"{server.url}/api/v1/auth/register", json=body, timeout=30)
        assert r.status_code == 201, r.text
        (got,) = smtp.wait_for("kim@example.com", timeout=60)
        assert got.link().startswith(f"{server.url}/verify-email?token=")
        r = httpx.post(
            f"{server.url}/api/v1/auth/verify-email",
            json={"token": token_of(got.link())},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["email_verified"] is True
    finally:
        server.stop()
