"""Who is acting and from where: passed to every service call (permissions and audit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the kit names domain rows in annotations only (.importlinter)
    from docstore.sharing.models import Share
    from docstore.users.models import User


@dataclass
class Actor:
    """The caller: a signed-in user, or an anonymous holder of a share link."""

    user: User | None
    ip: str | None = None
    user_agent: str | None = None
    link: Share | None = None
    token_id: int | None = None
    # WebDAV lock tokens the request presented (an `If:` header): writes to a locked
    # document pass only with one of its tokens (documents.dav_state.check_unlocked).
    lock_tokens: frozenset[str] = frozenset()

    @property
    def user_id(self) -> int | None:
        """The caller's user id, None for an anonymous link holder."""
        return self.user.id if self.user else None

    @property
    def is_admin(self) -> bool:
        """Whether the caller is an administrator."""
        return bool(self.user and self.user.is_admin)

    def system(self) -> Actor:
        """A copy without link scope, for server-side bookkeeping."""
        return Actor(user=self.user, ip=self.ip, user_agent=self.user_agent)


def system_actor() -> Actor:
    """The actor for background jobs and admin commands."""
    return Actor(user=None, ip=None, user_agent="docstore-worker")
