"""The worker's extraction end to end on both databases: every format is found by its
words, a corrupt PDF is `failed` with its reason and the worker carries on; and no query,
however odd, answers 500."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.app import Api
from tests.search import files
from tests.search.helpers import API, index, names, upload


def test_every_format_is_indexed_and_a_corrupt_pdf_fails(api: Api) -> None:
    alice = api.register()
    made = {
        "scan.pdf": files.pdf("Invoice Zanzibar 4711"),
        "tender.docx": files.docx("Tender for the Xylophone bridge"),
        "minutes.odt": files.odt("Minutes", "Quokka budget approved"),
        "page.html": b"<html><body><p>Welcome to Wombat Caf&eacute;</p></body></html>",
        "table.csv": b"animal,count\nnarwhal,3\n",
        "readme.md": b"# Setup\nInstall the kumquat package.",
        "notes.txt": "Résumé of the pangolin talk".encode(),
    }
    ids = {name: upload(alice, name, data)["id"] for name, data in made.items()}
    broken = upload(alice, "broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50)["id"]
    progress = index(api)
    assert (progress.indexed, progress.failed) == (len(made), 1)

    for word, name in [
        ("zanzibar", "scan.pdf"),
        ("xylophone", "tender.docx"),
        ("quokka", "minutes.odt"),
        ("cafe wombat", "page.html"),
        ("narwhal", "table.csv"),
        ("kumquat", "readme.md"),
        ("resume pangolin", "notes.txt"),
    ]:
        assert names(alice, word) == [name], word
    for doc_id in ids.values():
        assert alice.get(f"{API}/documents/{doc_id}").json()["index_status"] == "indexed"
    failed = alice.get(f"{API}/documents/{broken}").json()
    assert failed["index_status"] == "failed"
    # A failed version is not retried by every pass; a new version is read again.
    assert index(api).done == 0


_QUERY_CHARS = st.sampled_from(list("ab \"-*:()name^~\\'NOT OR AND NEAR é\u00df\u0130\x00\ue000"))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(q=st.one_of(st.text(max_size=40), st.lists(_QUERY_CHARS, max_size=30).map("".join)))
def test_no_query_answers_500(api: Api, q: str) -> None:
    user = getattr(api, "_search_user", None)
    if user is None:  # one account with something to find, for every example
        user = api._search_user = api.register()  # type: ignore[attr-defined]
        upload(user, "ab name é.txt", "a b ab name NOT OR é ß".encode())
        index(api)
    r = user.get(f"{API}/search", params={"q": q})
    assert r.status_code in (200, 400), (q, r.text)
    if r.status_code == 400:
        assert r.json()["detail"]
