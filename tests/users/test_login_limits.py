"""The back-off arithmetic behind the login and link-password limits (tests/attacks has the
attacks themselves, against real servers)."""

from __future__ import annotations

from docstore.config import Settings
from docstore.sharing.links import LinkLimits
from docstore.throttle import backoff
from docstore.users.login_limits import LoginLimits


def test_backoff_doubles_after_the_free_failures_and_is_capped() -> None:
    assert [backoff(n, 3, 1.0, 8.0) for n in range(1, 10)] == [0, 0, 0, 1, 2, 4, 8, 8, 8]
    limits = LoginLimits.from_settings(Settings())
    assert limits.account_wait(limits.free_per_account) == 0
    assert limits.account_wait(limits.free_per_account + 1) == 1.0
    assert limits.account_wait(10_000) == limits.backoff_max == 300
    links = LinkLimits.from_settings(Settings())
    delays = [links.delay(n) for n in range(9, 20)]
    assert delays[:1] == [0] and delays[1:5] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == links.backoff_max == 2.0
