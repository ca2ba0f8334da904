"""`docstore serve` under yappi (CPU clock, every thread): per-function call counts and CPU.

py-spy samples wall time and cannot tell a request's Python from its waits; yappi counts
calls, which is what showed that building SQLAlchemy statements cost more than running
them (bench/PROFILE.md, session 3). Used by `BENCH_PROFILE=calls bench/run`; the table is
written to $BENCH_YAPPI_OUT when the server stops. Costs ~2-3x CPU while it runs.
"""

from __future__ import annotations

import atexit
import os
import sys

import yappi


def dump(path: str, top: int = 150) -> None:
    """The top functions by own CPU and by inclusive CPU, one line each."""
    yappi.stop()
    stats = yappi.get_func_stats()
    with open(path, "w") as out:
        out.write("calls  own_ms  total_ms  function\n")
        for key in ("tsub", "ttot"):
            stats.sort(key, "desc")
            out.write(f"==== by {'own' if key == 'tsub' else 'inclusive'} CPU\n")
            for s in list(stats)[:top]:
                where = s.module.split("site-packages/")[-1].split("src/")[-1]
                out.write(
                    f"{s.ncall:>8} {s.tsub * 1000:10.1f} {s.ttot * 1000:10.1f}"
                    f"  {where}:{s.lineno} {s.name}\n"
                )


def main() -> None:
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
    atexit.register(dump, os.environ["BENCH_YAPPI_OUT"])
    from docstore.cli.main import app

    sys.argv = ["docstore", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
