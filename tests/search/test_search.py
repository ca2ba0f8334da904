"""GET /search on SQLite and PostgreSQL: the query syntax, ranking, paging, permissions,
trash, and the content index kept in step with versions."""

from __future__ import annotations

from tests.fixtures.app import Api
from tests.search.helpers import API, index, names, search, upload
from tests.sharing.helpers import share_with, tree


def test_query_syntax_accents_prefixes_phrases_exclusions(api: Api) -> None:
    alice = api.register()
    docs = alice.mkdir("Docs")
    upload(alice, "Quarterly-Report-2026.pdf", b"%PDF-1.4 not really", docs["id"])
    upload(alice, "Résumé.docx", b"not a docx", docs["id"])
    upload(alice, "notes.txt", b"The annual budget meeting moved to Tuesday. Draft only.")
    upload(alice, "minutes.md", b"# Minutes\nBudget approved; the meeting ended early.")
    upload(alice, "budget-draft.csv", b"item,amount\nmeeting room budget,100\n")
    index(api)

    assert names(alice, "quarterly rep") == ["Quarterly-Report-2026.pdf"]
    assert names(alice, "QUARTERLY-report") == ["Quarterly-Report-2026.pdf"]
    assert names(alice, "resume") == ["Résumé.docx"]
    assert names(alice, "résumé") == ["Résumé.docx"]
    # Content: all words must match; a phrase keeps its order; -word excludes.
    assert sorted(names(alice, "budget meeting")) == ["budget-draft.csv", "minutes.md", "notes.txt"]
    assert names(alice, '"budget meeting"') == ["notes.txt"]
    assert sorted(names(alice, "budget meeting -draft")) == ["minutes.md"]
    assert names(alice, "approv*") == ["minutes.md"]
    assert names(alice, "approv") == []  # content words match whole unless typed with *
    # name: limits a term to names; a folder is found by its name.
    assert names(alice, "name:budget") == ["budget-draft.csv"]
    assert names(alice, "name:budget meeting") == ["budget-draft.csv"]
    assert names(alice, "docs") == ["Docs"]
    # Name matches rank above content matches.
    assert names(alice, "budget")[0] == "budget-draft.csv"

    hit = search(alice, "budget meeting")["items"]
    by_name = {h["name"]: h for h in hit}
    assert "<mark>" in by_name["notes.txt"]["snippet"]
    assert by_name["notes.txt"]["path"] == "/notes.txt"
    assert by_name["notes.txt"]["permission"] == "OWNER"
    assert by_name["notes.txt"]["kind"] == "document"
    assert by_name["notes.txt"]["size_bytes"] > 0
    quarterly = search(alice, "quarterly")["items"][0]
    assert quarterly["path"] == "/Docs/Quarterly-Report-2026.pdf"
    assert quarterly["snippet"] == "<mark>Quarterly</mark>-Report-2026.pdf"

    # Filters.
    assert names(alice, "budget", kind="folder") == []
    assert names(alice, "budget", mime="text/csv") == ["budget-draft.csv"]
    assert sorted(names(alice, "budget", mime="text/")) == [
        "budget-draft.csv", "minutes.md", "notes.txt"
    ]  # fmt: skip
    assert names(alice, "quarterly", folder_id=docs["id"]) == ["Quarterly-Report-2026.pdf"]
    assert names(alice, "budget", folder_id=docs["id"]) == []
    assert names(alice, "budget", owner="others") == []
    assert names(alice, "budget", modified_after="2999-01-01T00:00:00Z") == []

    # Malformed: 400 with a reason, never 500.
    for bad in ("", "-only", "***", '"', "x" * 600):
        r = alice.get(f"{API}/search", params={"q": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["detail"]
    assert alice.get(f"{API}/search", params={"q": "a", "kind": "x"}).status_code == 400
    assert alice.get(f"{API}/search", params={"q": "a", "cursor": "zz"}).status_code == 400
    # A NUL in the type filter (schemathesis, on PostgreSQL: 422 from the database's refusal).
    r = alice.get(f"{API}/search", params={"q": "a", "mime": "z\x007"})
    assert r.status_code == 400 and "NUL" in r.json()["detail"], r.text


def test_snippet_escapes_everything_but_marks(api: Api) -> None:
    alice = api.register()
    upload(alice, "<b>evil & co.html", b"<p>Hello <script>alert(1)</script> x &lt;i&gt; world</p>")
    index(api)
    [hit] = search(alice, "hello")["items"]
    assert "<script>" not in hit["snippet"] and "<i>" not in hit["snippet"]
    assert "<mark>Hello</mark>" in hit["snippet"]
    [hit] = search(alice, "evil")["items"]
    assert hit["snippet"] == "&lt;b&gt;<mark>evil</mark> &amp; co.html"


def test_paging_is_stable_and_complete(api: Api) -> None:
    alice = api.register()
    for i in range(7):
        upload(alice, f"report-{i}.txt", b"report " * (i + 1))
    index(api)
    seen: list[int] = []
    for page in alice.pages(f"{API}/search", q="report", limit=3):
        assert len(page["items"]) <= 3
        seen += [h["id"] for h in page["items"]]
    assert len(seen) == 7 == len(set(seen))
    first = search(alice, "report", limit=7)["items"]
    assert [h["id"] for h in first] == seen


def test_permissions_shares_revocation_and_trash(api: Api) -> None:
    alice, bob, eve = api.register(), api.register(), api.register()
    top, mid, low = tree(alice, "Clients", "Acme", "Contracts")
    doc = upload(alice, "acme-contract.txt", b"Confidential supply contract for Acme", low["id"])
    upload(alice, "private-contract.txt", b"contract nobody else sees")
    index(api)

    assert names(eve, "contract") == []
    assert names(bob, "contract") == []
    share = share_with(alice, bob, "VIEW", folder_id=top["id"])
    found = search(bob, "contract")["items"]
    assert {h["name"] for h in found} == {"acme-contract.txt", "Contracts"}
    hit = next(h for h in found if h["kind"] == "document")
    assert hit["permission"] == "VIEW" and hit["owner_id"] == alice.info["id"]
    assert hit["path"] == "/Clients/Acme/Contracts/acme-contract.txt"
    assert names(bob, "supply", owner="others") == ["acme-contract.txt"]
    assert names(bob, "supply", owner="me") == []
    assert names(eve, "supply") == []
    # Searching inside a folder the caller cannot see is 404.
    r = eve.get(f"{API}/search", params={"q": "supply", "folder_id": mid["id"]})
    assert r.status_code == 404
    assert names(bob, "supply", folder_id=mid["id"]) == ["acme-contract.txt"]

    # Revoked: gone on the next request.
    assert alice.delete(f"{API}/shares/{share['id']}").status_code == 204
    assert names(bob, "contract") == []

    # Trash: gone, back on restore.
    assert alice.delete(f"{API}/documents/{doc['id']}").status_code == 204
    assert names(alice, "supply") == []
    assert alice.post(f"{API}/documents/{doc['id']}/restore").status_code == 200
    assert names(alice, "supply") == ["acme-contract.txt"]
    assert alice.delete(f"{API}/folders/{mid['id']}").status_code == 204
    assert names(alice, "supply") == [] and names(alice, "contracts") == []
    assert alice.post(f"{API}/folders/{mid['id']}/restore").status_code == 200
    assert names(alice, "supply") == ["acme-contract.txt"]


def test_index_follows_versions_renames_and_purge(api: Api) -> None:
    alice = api.register()
    doc = upload(alice, "plan.txt", b"first draft mentions apples")
    url = f"{API}/documents/{doc['id']}"
    assert alice.get(url).json()["index_status"] == "pending"
    index(api)
    assert alice.get(url).json()["index_status"] == "indexed"
    assert names(alice, "apples") == ["plan.txt"]

    base = doc["current_version"]["id"]
    r = alice.post(
        f"{url}/versions", params={"base_version_id": base}, content=b"second draft mentions pears"
    )
    assert r.status_code == 201, r.text
    assert alice.get(url).json()["index_status"] == "pending"
    index(api)
    assert names(alice, "pears") == ["plan.txt"] and names(alice, "apples") == []

    listed = alice.get(f"{url}/versions").json()
    first = (listed["items"] if isinstance(listed, dict) else listed)[-1]
    assert alice.post(f"{url}/versions/{first['id']}/restore").status_code == 201
    index(api)
    assert names(alice, "apples") == ["plan.txt"] and names(alice, "pears") == []

    assert alice.patch(url, json={"name": "roadmap.txt"}).status_code == 200
    assert names(alice, "roadmap") == ["roadmap.txt"] and names(alice, "plan") == []

    assert alice.delete(url).status_code == 204
    assert alice.delete(f"{API}/trash/{doc['id']}").status_code == 204
    assert names(alice, "apples") == [] and names(alice, "roadmap") == []
    skipped = upload(alice, "photo.jpg", b"\xff\xd8\xff apples")
    index(api)
    assert alice.get(f"{API}/documents/{skipped['id']}").json()["index_status"] == "skipped"
