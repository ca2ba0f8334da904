"""A change-feed client, as a sync client would be: replay the feed into a local tree and
compare it with what the API lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fixtures.app import User

API = "/api/v1"
Key = tuple[str, int]  # (kind, id)


def listed_tree(user: User) -> dict[Key, tuple[str, int | None]]:
    """Everything the user can list: their root folder's subtree and each item shared with
    them (a folder with its subtree), as (kind, id) -> (name, parent folder id)."""
    tree: dict[Key, tuple[str, int | None]] = {}
    todo: list[int | str] = ["root"]
    for page in user.pages(f"{API}/shared-with-me"):
        for item in page["items"]:
            parent = item.get("parent_folder_id")
            if item["kind"] == "folder":
                got = user.get(f"{API}/folders/{item['id']}")
                assert got.status_code == 200, got.text
                parent = got.json()["parent_id"]
                todo.append(item["id"])
            tree[(item["kind"], item["id"])] = (item["name"], parent)
    seen: set[int | str] = set()
    for _ in range(10_000):
        if not todo:
            break
        folder = todo.pop()
        if folder in seen:
            continue
        seen.add(folder)
        for page in user.pages(f"{API}/folders/{folder}/children", limit=1000):
            parent = page["folder"]["id"]
            for child in page["items"]:
                tree[(child["kind"], child["id"])] = (child["name"], parent)
                if child["kind"] == "folder":
                    todo.append(child["id"])
    return tree


def _parent(entry: dict[str, Any]) -> int | None:
    value = entry.get("parent_folder_id", entry.get("parent_id"))
    return int(value) if value is not None else None


@dataclass
class Replica:
    """A user's tree as rebuilt from their feed alone (plus the listing of a folder that
    appears, as the feed's contract says a client does)."""

    user: User
    cursor: str = ""
    tree: dict[Key, tuple[str, int | None]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)

    def start(self, folder_id: int | None = None) -> None:
        params = {"folder_id": folder_id} if folder_id is not None else {}
        r = self.user.get(f"{API}/changes/cursor", params=params)
        assert r.status_code == 200, r.text
        self.cursor = r.json()["cursor"]

    def pull(self) -> list[dict[str, Any]]:
        """Apply every change after the cursor; the changes applied."""
        got: list[dict[str, Any]] = []
        for _ in range(1000):
            r = self.user.get(f"{API}/changes", params={"cursor": self.cursor, "limit": 50})
            assert r.status_code == 200, r.text
            page = r.json()
            for change in page["changes"]:
                self.apply(change)
            got.extend(page["changes"])
            self.cursor = page["cursor"]
            if not page["has_more"]:
                break
        self.received.extend(got)
        return got

    def _drop(self, key: Key) -> None:
        self.tree.pop(key, None)
        if key[0] != "folder":
            return
        below = {key[1]}
        changed = True
        while changed:
            changed = False
            for k, (_, parent) in list(self.tree.items()):
                if parent in below and k in self.tree:
                    del self.tree[k]
                    if k[0] == "folder":
                        below.add(k[1])
                    changed = True

    def _list_into(self, folder_id: int) -> None:
        todo = [folder_id]
        for _ in range(10_000):
            if not todo:
                return
            folder = todo.pop()
            for page in self.user.pages(f"{API}/folders/{folder}/children", limit=1000):
                for child in page["items"]:
                    self.tree[(child["kind"], child["id"])] = (child["name"], folder)
                    if child["kind"] == "folder":
                        todo.append(child["id"])

    def apply(self, change: dict[str, Any]) -> None:
        key: Key = (change["kind"], change["id"])
        entry = change["entry"]
        if entry is None:
            self._drop(key)
            return
        known = key in self.tree
        self.tree[key] = (entry["name"], _parent(entry))
        appears = change["op"] in ("access_gained", "restored") or not known
        if key[0] == "folder" and appears:
            self._list_into(key[1])


def comparable(tree: dict[Key, tuple[str, int | None]]) -> dict[Key, tuple[str, int | None]]:
    """The tree with parents outside it blanked (a shared item's parent is not listed)."""
    folders = {i for k, i in tree if k == "folder"}
    return {k: (n, p if p in folders else None) for k, (n, p) in tree.items()}
