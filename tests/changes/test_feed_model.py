"""The change feed's property: random creates, saves, moves, renames, deletes, restores,
purges, shares and revokes (to users and to a group, and group membership changes) by
three users; after every step each user's replay of their feed, from the cursor they took
at the start, yields exactly the tree they can list through the API. And no change ever
names an item its user could not list just before or just after the step (a stranger
never learns an id); `purged` goes to the owner only.

Budget: `DOCSTORE_FEED_EXAMPLES` (default 4) examples of `DOCSTORE_FEED_STEPS` (default 25)
steps per database; a failure is shrunk to the fewest steps.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.changes.helpers import API, Replica, comparable, listed_tree
from tests.fixtures.app import Api, User
from tests.sharing.conftest import cheap_hasher

EXAMPLES = int(os.environ.get("DOCSTORE_FEED_EXAMPLES", "4"))
STEPS = int(os.environ.get("DOCSTORE_FEED_STEPS", "25"))
_n = itertools.count()

U = st.integers(0, 2)
IDX = st.integers(0, 10_000)  # an index into the known items (modulo their number)


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from docstore import security

    monkeypatch.setattr(security, "_hasher", cheap_hasher())


def test_replayed_feed_is_the_listed_tree(api: Api) -> None:
    class FeedMachine(RuleBasedStateMachine):
        @initialize()
        def users(self) -> None:
            self.users: list[User] = [api.register(f"feed{next(_n)}") for _ in range(3)]
            self.replicas = [Replica(u) for u in self.users]
            for r in self.replicas:
                r.start()
            self.folders: list[int] = []
            self.docs: list[int] = []
            self.owner: dict[tuple[str, int], int] = {}
            self.shares: list[int] = []
            r = self.users[0].post(f"{API}/groups", json={"name": f"g{next(_n)}"})
            assert r.status_code == 201, r.text
            self.group = r.json()["id"]
            for user in self.users[1:]:  # everyone is in the group: a share to it is seen
                r = self.users[0].post(
                    f"{API}/groups/{self.group}/members", json={"user_id": user.id}
                )
                assert r.status_code == 201, r.text
            self.listed = [listed_tree(u) for u in self.users]

        def _pick(self, items: list[int], i: int) -> int | None:
            return items[i % len(items)] if items else None

        def _folder(self, i: int) -> int | None:
            """A known folder, or None (the caller's root) one time in four."""
            return None if i % 4 == 0 else self._pick(self.folders, i // 4)

        @rule(u=U, parent=IDX)
        def mkdir(self, u: int, parent: int) -> None:
            r = self.users[u].post(
                f"{API}/folders", json={"name": f"f{next(_n)}", "parent_id": self._folder(parent)}
            )
            if r.status_code == 201:
                self.folders.append(r.json()["id"])
                self.owner[("folder", r.json()["id"])] = r.json()["owner_id"]

        @rule(u=U, folder=IDX)
        def upload(self, u: int, folder: int) -> None:
            r = self.users[u].upload(f"d{next(_n)}.txt", b"x%d" % next(_n), self._folder(folder))
            if r.status_code == 201:
                self.docs.append(r.json()["id"])
                self.owner[("document", r.json()["id"])] = r.json()["owner_id"]

        @rule(u=U, doc=IDX)
        def save(self, u: int, doc: int) -> None:
            d = self._pick(self.docs, doc)
            if d is not None:
                self.users[u].post(f"{API}/documents/{d}/versions", content=b"v%d" % next(_n))

        @rule(u=U, folder=st.booleans(), item=IDX)
        def rename(self, u: int, folder: bool, item: int) -> None:
            kind, items = ("folders", self.folders) if folder else ("documents", self.docs)
            i = self._pick(items, item)
            if i is not None:
                self.users[u].patch(f"{API}/{kind}/{i}", json={"name": f"r{next(_n)}"})

        @rule(u=U, folder=st.booleans(), item=IDX, dest=IDX)
        def move(self, u: int, folder: bool, item: int, dest: int) -> None:
            i = self._pick(self.folders if folder else self.docs, item)
            if i is None:
                return
            to = self._folder(dest)
            if folder:
                self.users[u].patch(f"{API}/folders/{i}", json={"parent_id": to})
            else:
                self.users[u].patch(f"{API}/documents/{i}", json={"parent_folder_id": to})

        def _owned(self, folder: bool, item: int) -> tuple[User, int] | None:
            """A known item and its owner (who alone may trash, restore, purge, share)."""
            kind = "folder" if folder else "document"
            i = self._pick(self.folders if folder else self.docs, item)
            if i is None:
                return None
            owner = next(u for u in self.users if u.id == self.owner[(kind, i)])
            return owner, i

        @rule(folder=st.booleans(), item=IDX)
        def delete(self, folder: bool, item: int) -> None:
            found = self._owned(folder, item)
            if found is not None:
                found[0].delete(f"{API}/{'folders' if folder else 'documents'}/{found[1]}")

        @rule(folder=st.booleans(), item=IDX)
        def restore(self, folder: bool, item: int) -> None:
            found = self._owned(folder, item)
            if found is not None:
                found[0].post(f"{API}/{'folders' if folder else 'documents'}/{found[1]}/restore")

        @rule(folder=st.booleans(), item=IDX)
        def purge(self, folder: bool, item: int) -> None:
            found = self._owned(folder, item)
            if found is not None:
                owner, i = found
                owner.delete(f"{API}/trash/folders/{i}" if folder else f"{API}/trash/{i}")

        @rule(to=st.integers(1, 2), folder=st.booleans(), item=IDX, group=st.booleans())
        def share(self, to: int, folder: bool, item: int, group: bool) -> None:
            found = self._owned(folder, item)
            if found is None:
                return
            owner, i = found
            body: dict[str, Any] = {"permission": "EDIT"}
            body["folder_id" if folder else "document_id"] = i
            if group:
                body["group_id"] = self.group
            else:
                grantee = self.users[(self.users.index(owner) + to) % 3]
                body["email"] = grantee.info["email"]
            r = owner.post(f"{API}/shares", json=body)
            if r.status_code == 201:
                self.shares.append(r.json()["id"])

        @rule(share=IDX)
        def revoke(self, share: int) -> None:
            s = self._pick(self.shares, share)
            if s is None:
                return
            for user in self.users:  # the owner's revoke succeeds; the others' are 404
                if user.delete(f"{API}/shares/{s}").status_code == 204:
                    self.shares.remove(s)
                    return

        @rule(member=st.integers(1, 2), add=st.booleans())
        def membership(self, member: int, add: bool) -> None:
            manager, user = self.users[0], self.users[member]
            if add:
                manager.post(f"{API}/groups/{self.group}/members", json={"user_id": user.id})
            else:
                manager.delete(f"{API}/groups/{self.group}/members/{user.id}")

        @invariant()
        def replay_is_listing(self) -> None:
            if not hasattr(self, "replicas"):
                return
            for k, (user, replica) in enumerate(zip(self.users, self.replicas, strict=True)):
                before = self.listed[k]
                got = replica.pull()
                now = listed_tree(user)
                self.listed[k] = now
                for change in got:
                    key = (change["kind"], change["id"])
                    if change["op"] == "purged":
                        assert self.owner.get(key) == user.id, change
                    else:
                        assert key in before or key in now, (user.id, change)
                assert comparable(replica.tree) == comparable(now), (user.id, replica.received)

    FeedMachine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    FeedMachine.TestCase().runTest()
