"""Issue 21 item 4: names the server builds (conflict copies, restore suffixes) and display
names pass the same rules as names a user gives; bidi controls are refused in names."""

from __future__ import annotations

import itertools
import unicodedata
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from docstore.names import MAX_NAME_BYTES, clean_name
from docstore.services import Services
from docstore.users.models import User as UserRow
from tests.fixtures.app import Api, User

API = "/api/v1"
EVIL_DISPLAY_NAME = "x/../../etc\nEVIL\u202e"
_n = itertools.count()


def register(api: Api, name: str) -> httpx.Response:
    return api.client.post(
        f"{API}/auth/register",
        json={
            "email": f"names{next(_n)}@example.com",
            "name": name,
            "password": "correct horse battery",
        },
    )


def signed_up(api: Api, name: str) -> User:
    """A new account whose address is proven (shares to it apply at once)."""
    r = register(api, name)
    assert r.status_code == 201, r.text
    body = r.json()
    return User(api, body["token"], api.verify_email(body["user"]["email"]))


def assert_422(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_error"


def assert_valid_name(name: str) -> None:
    """What a user could have typed: clean_name accepts it unchanged, within the byte limit."""
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert clean_name(name) == name
    assert unicodedata.is_normalized("NFC", name)


def conflict_copy(owner: User, editor: User, doc_name: str) -> dict[str, Any]:
    """`editor` (EDIT on owner's document) saves against a stale base with on_conflict=copy."""
    doc = owner.upload(doc_name, b"v1").json()
    v1 = doc["current_version"]["id"]
    if editor is not owner:
        r = owner.post(
            f"{API}/shares",
            json={"document_id": doc["id"], "permission": "EDIT", "email": editor.email},
        )
        assert r.status_code == 201, r.text
    r = owner.post(f"{API}/documents/{doc['id']}/versions", content=b"v2")
    assert r.status_code == 201, r.text
    r = editor.post(
        f"{API}/documents/{doc['id']}/versions",
        params={"base_version_id": v1, "on_conflict": "copy"},
        content=b"theirs",
    )
    assert r.status_code == 201, r.text
    assert r.json()["resolution"] == "conflict_copy"
    return dict(r.json()["document"])


@pytest.mark.parametrize(
    "name",
    [
        EVIL_DISPLAY_NAME,
        "a/b",
        "Eve\u202eenoyrevE",
        "Iso\u2066late",
        "line\u2028break",
        "tab\tx",
        "Alice\n",
        "\tBob",
    ],
    ids=[
        "issue",
        "slash",
        "rlo",
        "isolate",
        "line_separator",
        "control",
        "trailing_newline",
        "leading_tab",
    ],
)
def test_a_display_name_with_path_control_or_bidi_characters_is_refused(
    api: Api, name: str
) -> None:
    assert_422(register(api, name))


def test_display_names_are_nfc_and_length_limited(api: Api) -> None:
    assert_422(register(api, "a" * 201))
    user = signed_up(api, "Jose\u0301")  # decomposed: stored composed
    assert user.me()["name"] == "Jos\u00e9"


def test_a_long_multibyte_display_name_makes_a_conflict_copy_its_owner_can_rename(
    api: Api,
) -> None:
    """The issue: 200 x 'é' made a 436-byte conflict-copy name the owner could not PATCH."""
    ann = signed_up(api, "Ann")
    eve = signed_up(api, "\u00e9" * 200)
    copy = conflict_copy(ann, eve, "plan.txt")
    name = copy["name"]
    assert_valid_name(name)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert name.startswith("plan (conflict copy by \u00e9") and name.endswith(f" {today}).txt")
    r = ann.patch(f"{API}/documents/{copy['id']}", json={"name": name})
    assert r.status_code == 200, r.text
    r = ann.patch(f"{API}/documents/{copy['id']}", json={"name": "renamed.txt"})
    assert r.status_code == 200, r.text
    r = ann.patch(f"{API}/documents/{copy['id']}", json={"name": name})
    assert r.status_code == 200 and r.json()["name"] == name


def test_a_long_document_name_is_cut_in_the_stem_never_in_the_suffix(api: Api) -> None:
    ann = signed_up(api, "Ann")
    eve = signed_up(api, "\u00e9" * 200)
    long_name = "\u00e9" * 125 + ".txt"  # 254 bytes: valid, no room for any suffix
    first = conflict_copy(ann, eve, long_name)
    assert_valid_name(first["name"])
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert first["name"].endswith(f" {today}).txt")
    assert "(conflict copy by " in first["name"]
    # A second conflict against the same document: the number is kept too.
    doc_id = next(
        item["id"]
        for page in ann.pages(f"{API}/folders/root/children")
        for item in page["items"]
        if item["name"] == long_name
    )
    v = ann.get(f"{API}/documents/{doc_id}/versions").json()["items"][-1]["id"]
    r = eve.post(
        f"{API}/documents/{doc_id}/versions",
        params={"base_version_id": v, "on_conflict": "copy"},
        content=b"again",
    )
    assert r.status_code == 201, r.text
    second = r.json()["document"]["name"]
    assert_valid_name(second)
    assert second.endswith(f" {today}) 2.txt") and second != first["name"]


def test_a_stored_display_name_from_before_the_rules_is_scrubbed_in_a_conflict_copy(
    api: Api,
) -> None:
    """An account named before display names were checked: the copy's name is still clean."""
    ann = signed_up(api, "Ann")
    eve = signed_up(api, "Eve")
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    with services.database.transaction() as db:
        db.execute(update(UserRow).where(UserRow.id == eve.id).values(name=EVIL_DISPLAY_NAME))
    copy = conflict_copy(ann, eve, "plan.txt")
    assert_valid_name(copy["name"])
    assert not any(c in copy["name"] for c in "/\n\u202e")
    r = ann.patch(f"{API}/documents/{copy['id']}", json={"name": copy["name"]})
    assert r.status_code == 200, r.text


def test_restore_with_a_clash_fits_the_suffix_on_a_character_boundary(api: Api) -> None:
    ann = signed_up(api, "Ann")
    name = "\u00e9" * 125 + ".md"  # 253 bytes
    doc = ann.upload(name, b"old").json()
    assert ann.delete(f"{API}/documents/{doc['id']}").status_code == 204
    assert ann.upload(name, b"new").status_code == 201
    r = ann.post(f"{API}/documents/{doc['id']}/restore")
    assert r.status_code == 200, r.text
    restored = r.json()["name"]
    assert_valid_name(restored)
    assert restored.endswith(" (2).md")
    r = ann.patch(f"{API}/documents/{doc['id']}", json={"name": restored})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "name",
    ["invoice\u202efdp.exe", "a\u202ab", "a\u202cb", "a\u2066b", "a\u2069b"],
    ids=["rlo", "lre", "pdf", "lri", "pdi"],
)
def test_bidi_controls_in_item_names_are_refused(api: Api, name: str) -> None:
    ann = signed_up(api, "Ann")
    assert_422(ann.upload(name, b"MZ"))
    assert_422(
        ann.post(
            f"{API}/uploads",
            json={
                "filename": name,
                "size_bytes": 2,
                "checksum_sha256": "0" * 64,
            },
        )
    )
    assert_422(ann.post(f"{API}/folders", json={"name": name, "parent_id": None}))
    doc = ann.upload("fine.txt", b"x").json()
    assert_422(ann.patch(f"{API}/documents/{doc['id']}", json={"name": name}))
