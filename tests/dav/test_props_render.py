"""PROPFIND's one-pass allprop answer for folders and documents (`props._allprop_member`)
says exactly what the property-by-property path (`live_prop` over ALLPROP) says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from docstore.dav import props as P
from docstore.dav.tree import Node
from docstore.dav.xmlio import http_date, iso_date, propstat, response
from docstore.documents.dav_state import DavLock
from docstore.sharing.permissions import Level

WHEN = datetime(2026, 12, 7, 9, 8, 7, 654321, tzinfo=UTC)


def by_property(node: Node, ctx: P.Context, dead: list[tuple[str, str, str]]) -> str:
    """The answer built one live property at a time (no database needed for ALLPROP)."""
    db: Any = None
    found = [p for n in P.ALLPROP if (p := P.live_prop(db, node, n, ctx)) is not None]
    found += [value for _, _, value in dead]
    return response(node.href, propstat(found, 200))


def nodes() -> list[Node]:
    doc = Node(
        "document",
        "/dav/files/a%20%26%20b%3C1%3E.txt",
        'a & b<1>"x".txt',
        "files",
        7,
        1,
        WHEN,
        WHEN + timedelta(days=400, seconds=3),
        4096,
        "text/plain; charset=<odd>",
        12,
        "ab" * 32,
        Level.EDIT,
        ns_root=3,
        rel='a & b<1>"x".txt',
        ns_href="/dav/files/",
    )
    folder = Node(
        "folder",
        "/dav/files/sub/",
        "sub",
        "files",
        8,
        1,
        WHEN,
        WHEN,
        level=Level.OWNER,
        ns_root=3,
        rel="sub",
        ns_href="/dav/files/",
    )
    undated = Node("document", "/dav/files/new.bin", "new.bin", "files", 9, rel="new.bin")
    offset = Node(
        "document",
        "/dav/files/tz.bin",
        "tz.bin",
        "files",
        10,
        created=WHEN.astimezone(timezone(timedelta(hours=-7))),
        modified=WHEN.astimezone(timezone(timedelta(hours=5, minutes=30))),
        version_id=3,
        rel="tz.bin",
    )
    return [doc, folder, undated, offset]


@pytest.mark.parametrize("dead", [[], [("urn:x", "p", '<p xmlns="urn:x">v &amp; w</p>')]])
def test_allprop_member_matches_the_property_by_property_answer(
    dead: list[tuple[str, str, str]],
) -> None:
    for node in nodes():
        ctx = P.Context(viewer=1)
        key = P.key_of(node)
        assert key is not None
        ctx.dead = {key: dead}
        fast = P.render(None, node, "allprop", [], ctx)  # type: ignore[arg-type]
        assert fast == by_property(node, ctx, dead)


def test_a_locked_member_takes_the_property_by_property_path() -> None:
    doc = nodes()[0]
    lock = DavLock(
        token="opaquelocktoken:1",
        path=doc.rel,
        exclusive=True,
        depth_infinity=False,
        owner_xml=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        folder_id=None,
    )
    ctx = P.Context(locks=[lock], viewer=1)
    assert P._allprop_member(doc, ctx, "") is None
    answer = P.render(None, doc, "allprop", [], ctx)  # type: ignore[arg-type]
    assert "<D:activelock>" in answer and "opaquelocktoken:1" in answer


def test_dates_are_written_as_the_standard_library_writes_them() -> None:
    for days in range(0, 3000, 37):
        for tz in (UTC, timezone(timedelta(hours=-9, minutes=-30)), timezone(timedelta(0))):
            value = (WHEN + timedelta(days=days, seconds=days * 131)).astimezone(tz)
            assert http_date(value) == format_datetime(value.astimezone(UTC), usegmt=True)
            assert iso_date(value) == value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
