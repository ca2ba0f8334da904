"""litmus (Debian's WebDAV conformance suite) against a real `docstore serve`: every suite
(basic, copymove, props, locks, http) must pass with no failure, warning or skipped check."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.dav.conftest import DavServer
from tests.fixtures.services import missing

SUITES = ("basic", "copymove", "props", "locks", "http")
SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


def test_litmus_every_suite_passes(dav_server: DavServer, tmp_path: Path) -> None:
    if shutil.which("litmus") is None:
        missing("litmus", "the Debian package litmus is not installed")
    account = dav_server.account()
    url = f"{dav_server.url}/dav/files/"
    result = subprocess.run(
        ["litmus", "-k", url, account.email, account.token],
        env={"TESTS": " ".join(SUITES), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    summaries = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in SUMMARY.findall(out)}
    assert set(summaries) == set(SUITES), out[-4000:]
    for suite, (run, passed, failed) in summaries.items():
        assert failed == 0 and passed == run, f"{suite}: {passed}/{run}\n{out[-4000:]}"
    # litmus says "WARNING:" for a check that passed with a warning, "SKIPPED" for one it
    # could not run: neither counts as a pass here.
    assert "WARNING" not in out and "warning" not in out.lower(), out[-4000:]
    assert "SKIPPED" not in out.upper(), out[-4000:]
    assert result.returncode == 0, out[-4000:]
    assert sum(run for run, _, _ in summaries.values()) == 104
