"""`docstore sync --watch`: a round whenever the server's feed or the local disk says so.

Two listeners set one flag: a long-poll on `/changes/wait` (remote) and `watchfiles` on the
folder (local, the state folder excluded). A round starts only once the disk has been quiet
for `settle` seconds, so a file still being written is not uploaded half-done (the scan
also skips a file whose size or mtime moves while it is read).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from docstore.client.errors import DocstoreError
from docstore.client.sync.engine import Syncer
from docstore.client.sync.report import Report
from docstore.client.sync.state import STATE_DIR


class Watcher:
    def __init__(
        self,
        syncer: Syncer,
        *,
        settle: float = 1.0,
        poll_timeout: float = 30.0,
        on_round: Callable[[Report], None] | None = None,
    ) -> None:
        self.syncer = syncer
        self.settle = settle
        self.poll_timeout = poll_timeout
        self.on_round = on_round
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.last_local = 0.0
        self.cursor: str | None = None

    def _local(self) -> None:
        import watchfiles

        state = str(self.syncer.root / STATE_DIR)

        def keep(_change: object, path: str) -> bool:
            return not path.startswith(state)

        for _changes in watchfiles.watch(
            self.syncer.root,
            watch_filter=keep,
            stop_event=self.stop,
            debounce=400,
            step=100,
            rust_timeout=1000,
            yield_on_timeout=False,
        ):
            self.last_local = time.monotonic()
            self.wake.set()

    def _remote(self) -> None:
        while not self.stop.is_set():
            cursor = self.cursor
            if cursor is None:  # the first round has not stored one yet
                self.stop.wait(0.2)
                continue
            try:
                if self.syncer.client.wait_for_changes(cursor, int(self.poll_timeout)):
                    self.wake.set()
                    self.stop.wait(0.5)  # the round will move the cursor on
            except DocstoreError:
                self.stop.wait(5.0)  # server away: try again shortly

    def run(self, max_rounds: int | None = None) -> Report:
        """Sync now, then on every change until `stop` is set (or `max_rounds` rounds)."""
        threads = [
            threading.Thread(target=self._local, daemon=True),
            threading.Thread(target=self._remote, daemon=True),
        ]
        for t in threads:
            t.start()
        report = Report()
        rounds = 0
        try:
            while not self.stop.is_set():
                self.wake.clear()
                report = self.syncer.run_once()
                rounds += 1
                self.cursor = self.syncer.state.get("cursor")
                if self.on_round:
                    self.on_round(report)
                if max_rounds is not None and rounds >= max_rounds:
                    break
                # Failures are retried now and then even without news.
                self.wake.wait(10.0 if not report.ok else 300.0)
                while time.monotonic() - self.last_local < self.settle:
                    self.stop.wait(self.settle / 4)  # let the disk go quiet first
        finally:
            self.stop.set()
            for t in threads:
                with contextlib.suppress(RuntimeError):
                    t.join(timeout=2.0)
        return report
