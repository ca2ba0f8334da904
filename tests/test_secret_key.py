"""The generated HMAC key: private from birth and the same for every process on a data dir."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from docstore.config import Settings


def test_generated_key_is_private_and_agreed_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def first_use() -> None:
        settings = Settings(data_dir=data, secret_key=None)
        start.wait(timeout=10)
        keys.append(settings.resolved_secret_key())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(keys) == 8
    assert len(set(keys)) == 1, "racing first starts must agree on one key"
    assert len(keys[0]) >= 48
    key_file = data / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in data.iterdir()] == ["secret_key"], "no temporary file is left"
    assert Settings(data_dir=data, secret_key=None).resolved_secret_key() == keys[0]
