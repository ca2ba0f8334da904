"""Helpers for the group tests."""

from __future__ import annotations

from typing import Any

from tests.fixtures.app import User
from tests.sharing.helpers import API


def new_group(manager: User, name: str = "Design") -> dict[str, Any]:
    """POST /groups as `manager`; 201 expected."""
    r = manager.post(f"{API}/groups", json={"name": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


def add(manager: User, group: dict[str, Any], member: User, *, manager_flag: bool = False) -> None:
    """Add `member` to the group by email; 201 expected."""
    body: dict[str, Any] = {"email": member.email}
    if manager_flag:
        body["manager"] = True
    r = manager.post(f"{API}/groups/{group['id']}/members", json=body)
    assert r.status_code == 201, r.text


def share_to_group(
    owner: User, group: dict[str, Any], permission: str, **target: Any
) -> dict[str, Any]:
    """Share a document or folder with a group; 201 expected."""
    body = {"group_id": group["id"], "permission": permission, **target}
    r = owner.post(f"{API}/shares", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())
