"""Join the parts of one evaluation, run in several processes over disjoint goals, into one run store.

    python results/sweep-cpu-webshop-warmstart/merge_stores.py DEST PART_DIR...

Every part must be the same evaluation (env, split, policy, k, turns, seed, step) over other goals; DEST gets the
first part's config with the union of the goals and every episode of every part. Refuses overlapping goals and
parts that differ in anything but their goals.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hero_gym.records import RunStore


def merge(dest: str | Path, parts: list[str | Path]) -> int:
    stores = [RunStore(p) for p in parts]
    configs = [s.config for s in stores]
    skip = ("tasks", "created")
    same = {k: v for k, v in configs[0].items() if k not in skip}
    for p, c in zip(parts[1:], configs[1:]):
        other = {k: v for k, v in c.items() if k not in skip}
        if other != same:
            raise SystemExit(f"{p} is another evaluation: {sorted(k for k in same if same.get(k) != other.get(k))}")
    tasks: list[int] = []
    for p, c in zip(parts, configs):
        if set(c["tasks"]) & set(tasks):
            raise SystemExit(f"{p} repeats goals of an earlier part")
        tasks += c["tasks"]
    out = RunStore(dest)
    out.init({**configs[0], "tasks": sorted(tasks)})
    records = [r for s in stores for r in s.load()]
    out.append(records)
    return len(records)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    print(f"{merge(sys.argv[1], sys.argv[2:])} episodes into {sys.argv[1]}")
