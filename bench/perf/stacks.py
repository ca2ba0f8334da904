"""Summarise py-spy's collapsed stacks: where the samples go, by own time and inclusive."""

from __future__ import annotations

import sys
from collections import Counter


def main(path: str, top: int = 40, grep: str = "") -> None:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit() or (grep and grep not in stack):
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{total} samples")
    print("-- own time")
    for f, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    print("-- inclusive")
    for f, n in incl.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 40,
        sys.argv[3] if len(sys.argv) > 3 else "",
    )
