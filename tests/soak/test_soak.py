"""A short run of bench/soak.py in CI: a mixed load of uploads, saves with conflicts,
shares, listings, downloads and deletes from concurrent clients against the real server
on PostgreSQL + Redis + S3 (moto), then the blob GC and `docstore fsck`.

No timing is asserted: only what must hold under any load (no 5xx, fsck clean, bounded
memory, every download byte-exact, no answer a correct server cannot give).

CI runs 20 s of load after a 3 s warm-up (it was 30 s; the checks are the same). Not less:
every operation must have run, and at 30 s on a loaded 2-core machine the rarest ones
(restore, stale-base merge) ran 18 times each. For a longer soak here:
`DOCSTORE_SOAK_SECONDS=300 .venv/bin/pytest tests/soak`; for minutes, `bench/soak.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.redis import REDIS_URL, require_redis

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("DOCSTORE_SOAK_SECONDS", "20"))
CLIENTS = 8  # a 2-core CI box runs other tests beside this one (pytest -n 4)


def test_soak(pg_url: str, moto_endpoint: str, tmp_path: Path) -> None:
    require_redis().close()
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--json",
            "--seconds",
            str(SECONDS),
            "--warmup",
            "3",
            "--clients",
            str(CLIENTS),
            "--database-url",
            pg_url,
            "--s3-endpoint",
            moto_endpoint,
            "--redis-url",
            REDIS_URL,
            "--out",
            str(out),
            "--keep-log",
            str(tmp_path / "server.log"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300 + SECONDS,
        check=False,
    )
    assert out.exists(), f"the soak did not finish:\n{run.stderr[-4000:]}"
    result = json.loads(out.read_text())
    errors = result["errors"]
    context = json.dumps(
        {"errors": errors, "fsck": result["fsck"], "rss_mib": result["rss_mib"]}, indent=1
    )[:6000]

    assert errors["5xx"] == 0, context
    assert result["fsck"]["exit"] == 0 and result["fsck"]["ok"], context
    assert not [f for f in result["fsck"]["findings"] if f.get("severity") == "error"], context
    assert result["rss_mib"]["growth"] < 50, context
    assert errors["anomalies"].get("corrupt download", 0) == 0, context
    wrong = {k: v for k, v in errors["anomalies"].items() if k != "5xx"}
    assert not wrong, context
    assert errors["hung_clients"] == 0, context
    idle = [op["op"] for op in result["ops"] if op["count"] == 0]
    assert not idle, f"operations that never ran: {idle}"
