"""The built wheel is an installation of its own: it carries the templates, static files
and migrations, and `docstore serve` runs from a virtual environment outside the checkout.

The wheel is built from a copy of the sources (pip fetches the build backend, setuptools,
from the package index this machine uses). The new environment gets docstore from the
wheel alone; its dependencies come from the test environment's site-packages through a
`.pth` line, so the test downloads no runtime dependency (a fresh machine would install
them from the index: `pip install docstore-*.whl`).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_the_wheel_installs_outside_the_checkout_and_serves(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dist)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("docstore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (ROOT / "src/docstore/migrations/versions").glob("0*.py"))
    for needed in (
        *(f"docstore/migrations/versions/{m}" for m in migrations),
        "docstore/migrations/env.py",
        "docstore/web/templates/base.html",
        "docstore/mail/templates/verify_email.txt",
    ):
        assert needed in names, needed
    assert any(n.startswith("docstore/web/static/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (purelib / "test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCSTORE_", "PYTHON"))}
    env.update({"DOCSTORE_DATA_DIR": str(tmp_path / "data"), "DOCSTORE_SECRET_KEY": "wheel-test"})
    where = subprocess.run(
        [str(python), "-c", "import docstore; print(docstore.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir)  # not the checkout's sources
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(env_dir / "bin" / "docstore"), "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "serve.log").read_text()[-3000:]
        page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
        assert page.status_code == 200 and "<form" in page.text  # a packaged template
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
