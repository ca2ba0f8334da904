"""Starting docstore, its peers and the ceiling servers on 127.0.0.1 with temporary roots."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.perf.util import HOST, Proc, free_port, have

BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get(
    "BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(extra)
    return env


def docstore(
    work: Path, name: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Proc:
    """`docstore serve` (one uvicorn process, as shipped) on a fresh data dir; `args` are
    more options of `serve` (`--workers 2`)."""
    port = free_port()
    data = work / name
    data.mkdir(parents=True, exist_ok=True)
    e = _env(
        DOCSTORE_DATA_DIR=str(data),
        DOCSTORE_PUBLIC_URL=f"http://{HOST}:{port}",
        # Local mode takes the 1 GiB file through the simple upload, so lift its limit.
        DOCSTORE_SIMPLE_UPLOAD_MAX_BYTES=str(2 * 1024**3),
        DOCSTORE_RUN_JOBS_IN_SERVER="false",
        **AWS_ENV,
    )
    e.update(env or {})
    cmd = [str(BIN / "docstore"), "serve", "--host", HOST, "--port", str(port), *args]
    profile = os.environ.get("BENCH_PROFILE")
    if profile == "calls":
        # yappi in the server process: call counts and CPU per function, written when the
        # server stops (bench/perf/yappi_serve.py).
        out = Path(__file__).resolve().parents[1] / "results" / f"calls-{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        e["BENCH_YAPPI_OUT"] = str(out)
        cmd = [str(BIN / "python"), "-m", "bench.perf.yappi_serve", *cmd[1:]]
    elif profile:
        # py-spy record around the server: collapsed stacks per server in bench/results/
        # (summarise with `python -m bench.perf.stacks FILE`).
        out = Path(__file__).resolve().parents[1] / "results" / f"profile-{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        # =wall: every thread's stack, idle or not (where the waiting is); =native: every
        # running thread with its C frames (hashing and writes release the GIL); else GIL
        # holders.
        sampling = {"wall": ["--idle"], "native": ["--native"]}.get(profile, ["--gil"])
        cmd = [
            str(BIN / "py-spy"),
            "record",
            "--format",
            "raw",
            *sampling,
            "-o",
            str(out),
            "-r",
            "250",
            "--",
            *cmd,
        ]
    proc = Proc(name, cmd, e, work / f"{name}.log", url=f"http://{HOST}:{port}")
    proc.start(cwd=data)
    proc.wait_http("/healthz")
    return proc


def server_pid(proc: Proc) -> int:
    """The pid doing the serving (under py-spy, its child)."""
    from bench.perf.util import _tree

    return _tree(proc.pid)[-1]


def _exe(name: str) -> str:
    """A peer's executable: next to this Python (bench/run's venv), else on PATH."""
    here = BIN / name
    return str(here) if here.exists() else (shutil.which(name) or str(here))


def copyparty(work: Path, root: Path, extra: tuple[str, ...] = ()) -> Proc:
    """copyparty with its database on (-e2d), anonymous read-write on `root`."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cmd = [
        _exe("copyparty"),
        "-i",
        HOST,
        "-p",
        str(port),
        "-v",
        f"{root}::rw",
        "-e2d",
        "-q",
        "--hist",
        str(work / "copyparty-hist"),
        "--no-robots",
        *extra,
    ]
    proc = Proc("copyparty", cmd, _env(), work / "copyparty.log", url=f"http://{HOST}:{port}")
    proc.start(cwd=work)
    proc.wait_http("/")
    return proc


def wsgidav(work: Path, root: Path) -> Proc:
    """WsgiDAV on cheroot, anonymous, serving `root`."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cmd = [
        _exe("wsgidav"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--root",
        str(root),
        "--auth",
        "anonymous",
        "--server",
        "cheroot",
        "--no-config",
        "-q",
        "-q",
    ]
    proc = Proc("wsgidav", cmd, _env(), work / "wsgidav.log", url=f"http://{HOST}:{port}")
    proc.start(cwd=work)
    proc.wait_http("/")
    return proc


def nginx(work: Path) -> Proc | None:
    """nginx (from apt, if installed): DAV PUT to disk, PUT to tmpfs, sendfile GET."""
    exe = have("nginx")
    if exe is None:
        return None
    port = free_port()
    base = work / "nginx"
    disk = base / "disk"
    shm_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else base
    shm = Path(shm_root) / f"bench-nginx-{os.getpid()}"
    for d in (base, disk, disk / "tmp", shm, shm / "tmp", base / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    conf = base / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
    conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on;
  client_max_body_size 0;
  client_body_buffer_size 1m;
  proxy_temp_path {base}/proxy; fastcgi_temp_path {base}/fcgi; uwsgi_temp_path {base}/uwsgi;
  scgi_temp_path {base}/scgi;
  server {{
    listen {HOST}:{port};
    location /disk/ {{
      alias {disk}/;
      client_body_temp_path {disk}/tmp;
      dav_methods PUT DELETE;
      create_full_put_path on;
    }}
    location /shm/ {{
      alias {shm}/;
      client_body_temp_path {shm}/tmp;
      dav_methods PUT DELETE;
    }}
  }}
}}
""")
    proc = Proc(
        "nginx",
        [exe, "-c", str(conf), "-p", str(base)],
        _env(),
        base / "out.log",
        url=f"http://{HOST}:{port}",
    )
    proc.extra = {"disk": disk, "shm": shm}
    proc.start(cwd=base)
    proc.wait_http("/disk/")
    return proc


def bare(work: Path) -> Proc:
    """The bare FastAPI app on the same stack as `docstore serve` (uvicorn, one process)."""
    port = free_port()
    code = (
        "import uvicorn; from bench.perf.bare_app import app; "
        f"uvicorn.run(app, host='{HOST}', port={port}, proxy_headers=False, "
        "log_level='warning', access_log=False)"
    )
    repo = Path(__file__).resolve().parents[2]
    env = _env(PYTHONPATH=str(repo))
    proc = Proc(
        "bare", [sys.executable, "-c", code], env, work / "bare.log", url=f"http://{HOST}:{port}"
    )
    proc.start(cwd=repo)
    proc.wait_http("/json")
    return proc


def moto(work: Path) -> Proc:
    """A moto S3 server with a `bench` bucket."""
    port = free_port()
    proc = Proc(
        "moto",
        [str(BIN / "moto_server"), "-H", HOST, "-p", str(port)],
        _env(**AWS_ENV),
        work / "moto.log",
        url=f"http://{HOST}:{port}",
    )
    proc.start(cwd=work)
    proc.wait_http("/")
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=proc.url,
        region_name="us-east-1",
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="bench")
    return proc


def pg_database(name: str) -> str | None:
    """A fresh PostgreSQL database (None when PostgreSQL is not reachable)."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    return PG_URL_BASE + name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_ok() -> bool:
    try:
        import redis

        r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        return bool(r.ping())
    except Exception:
        return False
