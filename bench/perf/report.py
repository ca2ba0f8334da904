"""One table: docstore's figure, the peers' figures, the ceiling, the ratios and the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Stats = dict[str, float]


@dataclass
class Row:
    """One line of the table; every figure is median [min-max] of the runs."""

    key: str
    title: str
    unit: str
    docstore: Stats | None = None
    peers: dict[str, Stats] | None = None
    ceiling: tuple[str, Stats] | None = None
    # (peer name or "ceiling", minimum ratio of docstore to it; for lower_is_better, maximum)
    targets: list[tuple[str, float]] = field(default_factory=list)
    lower_is_better: bool = False
    target_abs: tuple[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ratio(self, other: str) -> float | None:
        """docstore's median over the other's (for times: docstore's time over theirs)."""
        if self.docstore is None:
            return None
        if other == "ceiling":
            base = self.ceiling[1] if self.ceiling else None
        else:
            base = (self.peers or {}).get(other)
        if not base or not base["median"]:
            return None
        return self.docstore["median"] / base["median"]

    def verdicts(self) -> list[dict[str, Any]]:
        out = []
        for other, want in self.targets:
            r = self.ratio(other)
            ok = None if r is None else (r <= want if self.lower_is_better else r >= want)
            op = "<=" if self.lower_is_better else ">="
            out.append({"vs": other, "ratio": r, "target": f"{op} {want}x", "met": ok})
        if self.target_abs and self.docstore:
            op, value = self.target_abs
            v = self.docstore["median"]
            out.append(
                {
                    "vs": "absolute",
                    "ratio": v,
                    "target": f"{op} {value}",
                    "met": v < value if op == "<" else v > value,
                }
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "docstore": self.docstore,
            "peers": self.peers,
            "ceiling": {"name": self.ceiling[0], **self.ceiling[1]} if self.ceiling else None,
            "ratios": {
                k: self.ratio(k)
                for k in [*(self.peers or {}), "ceiling"]
                if self.ratio(k) is not None
            },
            "lower_is_better": self.lower_is_better,
            "verdicts": self.verdicts(),
            **self.extra,
        }


def fmt(s: Stats | float | None) -> str:
    if s is None or s == {}:
        return "-"
    if isinstance(s, int | float):  # one figure, not the runs' median [min-max]
        s = {"median": float(s), "min": float(s), "max": float(s)}
    m, lo, hi = s["median"], s["min"], s["max"]
    digits = 0 if m >= 100 else 1 if m >= 10 else 2 if m >= 0.1 else 3
    if s.get("runs", 1) > 1:
        return f"{m:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"
    return f"{m:.{digits}f}"


def render(rows: list[Row]) -> str:
    """A plain-text table, one row per workload or ceiling."""
    header = [
        "workload",
        "unit",
        "docstore med [min-max]",
        "peers",
        "ceiling",
        "docstore ratios",
        "targets",
    ]
    lines = []
    for r in rows:
        peers = "; ".join(f"{k} {fmt(v)}" for k, v in (r.peers or {}).items()) or "-"
        ceiling = f"{r.ceiling[0]} {fmt(r.ceiling[1])}" if r.ceiling else "-"
        ratios = []
        for k in [*(r.peers or {}), "ceiling"]:
            x = r.ratio(k)
            if x is not None:
                ratios.append(f"{x:.2f}x {k}")
        targets = []
        for v in r.verdicts():
            mark = "n/a" if v["met"] is None else "MET" if v["met"] else "MISSED"
            targets.append(f"{v['vs']} {v['target']}: {mark}")
        title = r.title
        if "ceiling_p50_ms" in r.extra:  # a load row: latency beside the bare app's
            title += (
                f" (p50 {fmt(r.extra['p50_ms'])} ms, p99 {fmt(r.extra['p99_ms'])} ms;"
                f" bare p50 {fmt(r.extra['ceiling_p50_ms'])}, "
                f"p99 {fmt(r.extra['ceiling_p99_ms'])}; server CPU/req "
                f"{r.extra['server_cpu_ms_per_req']:.2f} ms vs bare "
                f"{r.extra['ceiling_cpu_ms_per_req']:.2f} ms)"
            )
        elif "p50_ms" in r.extra:
            title += f" (p50 {fmt(r.extra['p50_ms'])} ms)"
        if "server_cpu_ms_per_file" in r.extra:
            title += (
                " (server CPU ms/file: "
                + ", ".join(f"{k} {v}" for k, v in r.extra["server_cpu_ms_per_file"].items())
                + ")"
            )
        lines.append(
            [
                title,
                r.unit,
                fmt(r.docstore),
                peers,
                ceiling,
                ", ".join(ratios) or "-",
                "; ".join(targets) or "-",
            ]
        )
    out = []
    for line in lines:
        out.append(f"## {line[0]}  [{line[1]}]")
        for name, cell in zip(header[2:], line[2:], strict=True):
            out.append(f"   {name:<24} {cell}")
    return "\n".join(out)
