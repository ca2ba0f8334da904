"""What a sync round reports (its events and failed paths), and the two ways it stops: the
whole sync (`SyncError`) or one path until the next round (`Skip`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


class SyncError(Exception):
    """The sync cannot start at all (wrong folder, no such remote path…)."""


class Skip(Exception):
    """This path is left for a later round (it changed under us)."""


@dataclass
class Report:
    """What a round did: the actions (or, dry run, would do) and the paths that failed."""

    actions: list[Event] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    listed: bool = False  # the remote tree was listed (False: the feed said nothing changed)
    feed_calls: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return bool(self.actions)
