"""Compare docstore's 3-way merge (merge3) with `git merge-file` on a corpus of cases.

Prints one row per case and a summary: agreement on clean/conflict and, where both are
clean, on the merged bytes. Run: .venv/bin/python bench/merge_vs_git.py
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from pathlib import Path

from docstore.versions.merge import merge_texts

Case = tuple[str, bytes, bytes, bytes]


def hand_cases() -> list[Case]:
    """Named cases covering the situations a merge meets in practice."""
    b = b"a\nb\nc\nd\ne\nf\n"
    return [
        ("disjoint edits", b, b"A\nb\nc\nd\ne\nf\n", b"a\nb\nc\nd\ne\nF\n"),
        ("same line, different edits", b, b"a\nB1\nc\nd\ne\nf\n", b"a\nB2\nc\nd\ne\nf\n"),
        ("same line, same edit", b, b"a\nB\nc\nd\ne\nf\n", b"a\nB\nc\nd\ne\nf\n"),
        ("adjacent lines", b, b"a\nB\nc\nd\ne\nf\n", b"a\nb\nC\nd\ne\nf\n"),
        ("insert at same place", b, b"a\nX\nb\nc\nd\ne\nf\n", b"a\nY\nb\nc\nd\ne\nf\n"),
        ("insert at same place, same text", b, b"a\nX\nb\nc\nd\ne\nf\n", b"a\nX\nb\nc\nd\ne\nf\n"),
        ("delete vs edit elsewhere", b, b"a\nc\nd\ne\nf\n", b"a\nb\nc\nd\nE\nf\n"),
        ("delete vs edit same line", b, b"a\nc\nd\ne\nf\n", b"a\nBB\nc\nd\ne\nf\n"),
        ("append on both sides", b, b + b"x\n", b + b"y\n"),
        ("current unchanged", b, b, b"a\nb\nC\nd\ne\nf\n"),
        ("incoming unchanged", b, b"a\nb\nC\nd\ne\nf\n", b),
        ("empty base", b"", b"a\n", b"b\n"),
        ("crlf current, lf incoming edit", b, b.replace(b"\n", b"\r\n").replace(b"a", b"A"),
         b"a\nb\nc\nd\ne\nF\n"),
        ("missing final newline on incoming", b, b"A\nb\nc\nd\ne\nf\n", b"a\nb\nc\nd\ne\nF"),
        ("missing final newline in base", b[:-1], b"A\nb\nc\nd\ne\nf", b"a\nb\nc\nd\ne\nF"),
    ]  # fmt: skip


def random_cases(n: int, seed: int = 7) -> list[Case]:
    """Random edits (replace/insert/delete) by both sides on random line documents."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", ""]
    cases = []
    for i in range(n):
        base = [f"{rng.choice(words)} {rng.randrange(50)}\n" for _ in range(rng.randrange(5, 40))]

        def mutate(lines: list[str], tag: str) -> list[str]:
            out = list(lines)
            for _ in range(rng.randrange(1, 4)):
                j = rng.randrange(len(out) + 1)
                op = rng.choice(["replace", "insert", "delete"])
                if op == "insert" or j == len(out):
                    out.insert(j, f"{tag} {rng.randrange(1000)}\n")
                elif op == "replace":
                    out[j] = f"{tag} {rng.randrange(1000)}\n"
                elif len(out) > 1:
                    del out[j]
            return out

        cases.append((f"random {i}", "".join(base).encode(),
                      "".join(mutate(base, "cur")).encode(),
                      "".join(mutate(base, "inc")).encode()))  # fmt: skip
    return cases


def git_merge(base: bytes, current: bytes, incoming: bytes) -> tuple[bool, bytes]:
    """(clean, merged bytes) from `git merge-file -p current base incoming`."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, data in (("current", current), ("base", base), ("incoming", incoming)):
            p = Path(d) / name
            p.write_bytes(data)
            paths.append(str(p))
        proc = subprocess.run(["git", "merge-file", "-p", *paths], capture_output=True)
        if proc.returncode < 0 or proc.returncode > 127:
            raise RuntimeError(proc.stderr.decode())
        return proc.returncode == 0, proc.stdout


def main() -> None:
    cases = hand_cases() + random_cases(30)
    rows = []
    for name, base, cur, inc in cases:
        ours = merge_texts(base, cur, inc)
        git_clean, git_out = git_merge(base, cur, inc)
        ours_clean = ours.data is not None
        rows.append({
            "case": name,
            "docstore": "clean" if ours_clean else f"conflict({ours.conflicts})",
            "git": "clean" if git_clean else "conflict",
            "agree_outcome": ours_clean == git_clean,
            "agree_text": (ours.data == git_out) if ours_clean and git_clean else None,
        })  # fmt: skip
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'docstore':<12} {'git':<9} outcome  text")
    for r in rows:
        text = "-" if r["agree_text"] is None else ("same" if r["agree_text"] else "DIFF")
        mark = "agree" if r["agree_outcome"] else "DIFFER"
        print(f"{r['case']:<{width}}  {r['docstore']:<12} {r['git']:<9} {mark:<8} {text}")
    n = len(rows)
    outcome = sum(r["agree_outcome"] for r in rows)
    both_clean = [r for r in rows if r["agree_text"] is not None]
    same_text = sum(bool(r["agree_text"]) for r in both_clean)
    print(f"\n{n} cases: clean/conflict agree on {outcome}/{n}; merged text identical on "
          f"{same_text}/{len(both_clean)} cases both merged cleanly")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "merge_vs_git.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
