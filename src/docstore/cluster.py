"""A scale-out deployment on this machine, for trying it and for the tests (`scripts/cluster`).

`python -m docstore.cluster up` starts, under a cluster directory (default `.cluster/`):
a fresh PostgreSQL database on the local server, Redis (a key prefix of its own on the local
one, or a private `redis-server`), an S3 server (moto_server, unless `--storage-url` names
one: LocalStack, MinIO, AWS), N `docstore serve` processes behind nginx (passive health
checks; idempotent requests retried on the next server) and M `docstore worker`s, all
sharing the settings every process of one deployment must share. `down` stops what `up`
started (pid files) and drops the database; `status` says what runs.

The processes run in sessions of their own and outlive the command; every file they write
(logs, pid files, nginx's conf and temp files, each process's data dir) is in the directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 180.0  # seconds; a loaded 2-core machine took 60 s to start one server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str | None:
    """nginx from PATH or Debian's /usr/sbin (not on a normal user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@dataclass
class State:
    """What `up` started, kept in DIR/state.json for `status` and `down`."""

    database: str
    database_url: str
    storage_url: str
    redis_url: str
    secret_key: str
    audit_key: str
    url: str  # nginx: the cluster's one address
    nginx_port: int
    server_ports: list[int]
    workers: int
    pids: dict[str, int] = field(default_factory=dict)
    pg_admin_dsn: str = PG_ADMIN_DSN


class Cluster:
    """The processes of one local cluster, each startable and stoppable on its own."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.state_file = self.root / "state.json"
        self.state: State | None = None
        if self.state_file.exists():
            self.state = State(**json.loads(self.state_file.read_text()))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- up -------------------------------------------------------------------------------

    def up(
        self,
        *,
        servers: int = 3,
        workers: int = 2,
        storage_url: str | None = None,
        redis_url: str | None = None,
        private_redis: bool = False,
        pg_admin_dsn: str = PG_ADMIN_DSN,
        pg_url_base: str = PG_URL_BASE,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> State:
        """Start everything; servers and workers at the same instant (they race to
        migrate the fresh database, as replicas a deployment tool starts do)."""
        if self.state is not None and any(self.alive(n) for n in self.state.pids):
            raise SystemExit(f"a cluster already runs in {self.root} (`down` first)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(env or {})
        database = f"docstore_cluster_{secrets.token_hex(4)}"
        import psycopg

        with psycopg.connect(pg_admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self.state = State(
            database=database,
            database_url=pg_url_base + database,
            storage_url="",
            redis_url="",
            secret_key=secrets.token_urlsafe(48),
            audit_key=secrets.token_hex(32),
            url="",
            nginx_port=free_port(),
            server_ports=[free_port() for _ in range(servers)],
            workers=workers,
            pg_admin_dsn=pg_admin_dsn,
        )
        state = self.state
        state.url = f"http://127.0.0.1:{state.nginx_port}"
        if private_redis:
            port = free_port()
            state.redis_url = f"redis://127.0.0.1:{port}/0"
            self.start_redis(port)
        else:
            prefix = f"docstore-cluster-{database}:"
            state.redis_url = f"{redis_url or LOCAL_REDIS}?prefix={prefix}"
        if storage_url:
            state.storage_url = storage_url
        else:
            port = free_port()
            self._start("moto", [_moto_server(), "-H", "127.0.0.1", "-p", str(port)])
            _wait_http(f"http://127.0.0.1:{port}/moto-api/", self.procs["moto"], any_status=True)
            query = {"endpoint_url": f"http://127.0.0.1:{port}", "region": "us-east-1"}
            query["create_bucket"] = "true"
            state.storage_url = f"s3://docstore-cluster?{urlencode(query)}"
        self.write_nginx_conf()
        self.start_nginx()
        for i in range(servers):
            self.start_server(i, wait=False)
        for i in range(workers):
            self.start_worker(i)
        self.save()
        if wait:
            for i in range(servers):
                self.wait_ready(i)
        return state

    def env(self) -> dict[str, str]:
        """The environment every docstore process of the cluster shares."""
        state = self._state()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
        env.update(
            {
                "DOCSTORE_DATABASE_URL": state.database_url,
                "DOCSTORE_STORAGE_URL": state.storage_url,
                "DOCSTORE_REDIS_URL": state.redis_url,
                "DOCSTORE_SECRET_KEY": state.secret_key,
                "DOCSTORE_AUDIT_KEY": state.audit_key,
                "DOCSTORE_AUDIT_ANCHOR_FILE": str(self.root / "audit-anchor.jsonl"),
                "DOCSTORE_PUBLIC_URL": state.url,
                "DOCSTORE_TRUSTED_PROXIES": '["127.0.0.1"]',
                "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
                # 5 processes on one PostgreSQL (often shared: max_connections 100)
                "DOCSTORE_DATABASE_POOL_SIZE": "4",
                "DOCSTORE_DATABASE_MAX_OVERFLOW": "8",
            }
        )
        for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
            env.setdefault(name, value)
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env.update(getattr(self, "extra_env", {}))
        return env

    def start_server(self, i: int, *, wait: bool = True) -> None:
        """Start (or start again) server `i` on its port."""
        port = self._state().server_ports[i]
        cmd = [sys.executable, "-m", "docstore.cli.main", "serve", "--port", str(port)]
        self._start(f"server{i}", cmd, docstore=True)
        if wait:
            self.wait_ready(i)

    def start_worker(self, i: int) -> None:
        """Start (or start again) worker `i`."""
        self._start(f"worker{i}", [sys.executable, "-m", "docstore.cli.main", "worker"], True)

    def start_redis(self, port: int) -> None:
        """A private redis-server (no persistence) on `port`."""
        (self.root / "redis").mkdir(exist_ok=True)
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.root / "redis")]
        self._start("redis", cmd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.05)

    def write_nginx_conf(self, servers: list[int] | None = None) -> None:
        """nginx as the balancer: its own prefix, pid, logs and temp files under the dir;
        `servers`: the indexes of the servers it sends to (default: all)."""
        state = self._state()
        tmp = self.root / "nginx"
        tmp.mkdir(exist_ok=True)
        chosen = range(len(state.server_ports)) if servers is None else servers
        upstreams = "\n".join(
            f"        server 127.0.0.1:{state.server_ports[i]} max_fails=1 fail_timeout=2s;"
            for i in chosen
        )
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers write the temp dir
        temp = "\n".join(
            f"    {kind}_temp_path {tmp}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = f"""{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {self.root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format up '$remote_addr "$request" $status $request_time '
                  'upstream=$upstream_addr status=$upstream_status';
    access_log {self.root}/nginx-access.log up;
{temp}
    client_max_body_size 0;
    upstream docstore {{
{upstreams}
    }}
    server {{
        listen 127.0.0.1:{state.nginx_port};
        location / {{
            proxy_pass http://docstore;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Bodies stream through (uploads of any size); a request is passed to the next
            # server when its server refuses the connection, times out or answers 502/503,
            # for idempotent methods, and for any method nginx had not yet sent.
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 20s;
        }}
    }}
}}
"""
        (self.root / "nginx.conf").write_text(conf)

    def start_nginx(self) -> None:
        """Start nginx on the conf written; wait until it listens."""
        nginx = nginx_binary()
        if nginx is None:
            raise SystemExit("nginx is not installed (Debian: apt-get install nginx-light)")
        prefix = str(self.root / "nginx")
        conf = str(self.root / "nginx.conf")
        self._start(
            "nginx", [nginx, "-p", prefix, "-c", conf, "-e", str(self.root / "nginx-error.log")]
        )
        port = self._state().nginx_port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.05)
        raise SystemExit(f"nginx did not start: {self.log('nginx').read_text()[-2000:]}")

    def balance(self, servers: list[int]) -> None:
        """Send requests to these servers only (nginx reloads its conf: the requests in
        flight finish on the old workers). Also how to take a server out before stopping
        it, for balancers that cannot watch /readyz."""
        self.write_nginx_conf(servers)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._state().pids["nginx"], signal.SIGHUP)
        time.sleep(1.0)  # nginx starts new workers and retires the old ones

    def _start(self, name: str, cmd: list[str], docstore: bool = False) -> None:
        workdir = self.root / name
        workdir.mkdir(exist_ok=True)
        env = self.env() if docstore else dict(os.environ)
        if docstore:
            env["DOCSTORE_DATA_DIR"] = str(workdir)
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 (our own commands, no shell)
                cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        self._state().pids[name] = proc.pid
        (self.root / f"{name}.pid").write_text(f"{proc.pid}\n")
        self.save()

    # -- inspect --------------------------------------------------------------------------

    def log(self, name: str) -> Path:
        """The process's log file (stdout and stderr)."""
        return self.root / f"{name}.log"

    def server_url(self, i: int) -> str:
        """Server `i`'s own address (bypassing nginx)."""
        return f"http://127.0.0.1:{self._state().server_ports[i]}"

    def ready(self, i: int) -> bool:
        """Whether server `i` answers /readyz with 200."""
        return _status(f"{self.server_url(i)}/readyz") == 200

    def wait_ready(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Until server `i` is ready; SystemExit with its log's tail if it died or timed out."""
        name = f"server{i}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(i):
                return
            if not self.alive(name):
                break
            time.sleep(0.1)
        raise SystemExit(f"{name} is not ready:\n{self.log(name).read_text()[-3000:]}")

    def alive(self, name: str) -> bool:
        """Whether the process `name` started still runs."""
        proc = self.procs.get(name)
        if proc is not None:
            return proc.poll() is None
        pid = self._state().pids.get(name)
        if pid is None:
            return False
        try:  # not ours (a reused pid) unless it runs what we start
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] != "Z" and any(
            word in cmdline for word in (b"docstore", b"nginx", b"moto", b"redis")
        )

    def status(self) -> dict[str, Any]:
        """Each process: running or not; each server: ready or not."""
        state = self._state()
        rows: dict[str, Any] = {"url": state.url, "database": state.database}
        for name, pid in state.pids.items():
            rows[name] = {"pid": pid, "running": self.alive(name)}
        for i, _ in enumerate(state.server_ports):
            if f"server{i}" in rows:
                rows[f"server{i}"]["ready"] = self.ready(i)
        return rows

    # -- down -----------------------------------------------------------------------------

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int | None:
        """Signal process `name` and wait until it has gone (SIGKILL after `timeout`)."""
        if not self.alive(name):
            return None
        pid = self._state().pids[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        proc = self.procs.get(name)
        if proc is not None:
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(10)
        deadline = time.monotonic() + timeout
        while self.alive(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return None

    def down(self) -> None:
        """Stop every process (docstore first, then nginx and the services) and drop the
        database; the directory stays (logs)."""
        state = self._state()
        order = sorted(state.pids, key=lambda n: (not n.startswith(("server", "worker")), n))
        for name in order:
            self.stop(name, timeout=15.0)
            (self.root / f"{name}.pid").unlink(missing_ok=True)
        import psycopg

        with contextlib.suppress(psycopg.Error):
            dsn = state.pg_admin_dsn
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{state.database}" WITH (FORCE)')
        if "prefix=" in state.redis_url and "redis" not in state.pids:
            _drop_redis_prefix(state.redis_url)
        state.pids.clear()
        self.save()

    def save(self) -> None:
        """Write DIR/state.json."""
        self.state_file.write_text(json.dumps(asdict(self._state()), indent=2))

    def _state(self) -> State:
        if self.state is None:
            raise SystemExit(f"no cluster in {self.root} (`up` first)")
        return self.state


def _moto_server() -> str:
    found = Path(sys.executable).with_name("moto_server")
    if found.exists():
        return str(found)
    which = shutil.which("moto_server")
    if which is None:
        raise SystemExit(
            "moto_server is not installed (pip install 'moto[server]'), or pass --storage-url"
        )
    return which


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback only)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _wait_http(url: str, proc: subprocess.Popen[bytes], *, any_status: bool = False) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        code = _status(url)
        if code is not None and (any_status or code == 200):
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def _drop_redis_prefix(url: str) -> None:
    import redis

    base, _, prefix = url.partition("?prefix=")
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(base, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    """`scripts/cluster up|down|status`."""
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("DOCSTORE_CLUSTER_DIR", ".cluster"))
    )
    parser.add_argument("--servers", type=int, default=3, help="docstore serve processes (3)")
    parser.add_argument("--workers", type=int, default=2, help="docstore worker processes (2)")
    parser.add_argument("--storage-url", help="an S3 storage URL instead of a local moto_server")
    parser.add_argument("--redis-url", help=f"Redis to use under a key prefix ({LOCAL_REDIS})")
    parser.add_argument(
        "--private-redis", action="store_true", help="start a redis-server of its own"
    )
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("DOCSTORE_CLUSTER_PG_DSN", PG_ADMIN_DSN),
        help="libpq DSN of a PostgreSQL role that may create databases",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("DOCSTORE_CLUSTER_PG_URL", PG_URL_BASE),
        help="SQLAlchemy URL of that server, without the database name",
    )
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir)
    if args.command == "up":
        state = cluster.up(
            servers=args.servers, workers=args.workers, storage_url=args.storage_url,
            redis_url=args.redis_url, private_redis=args.private_redis,
            pg_admin_dsn=args.pg_dsn, pg_url_base=args.pg_url,
        )  # fmt: skip
        _say(
            f"docstore cluster up: {state.url}  ({args.servers} servers behind nginx, "
            f"{args.workers} workers; database {state.database}; logs in {cluster.root})"
        )
        _say(f"register the first account: open {state.url}/ ; stop: scripts/cluster down")
        return 0
    if args.command == "status":
        rows = cluster.status()
        _say(json.dumps(rows, indent=2))
        running = [v for v in rows.values() if isinstance(v, dict)]
        return 0 if running and all(v["running"] for v in running) else 1
    cluster.down()
    _say(f"docstore cluster down ({cluster.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
