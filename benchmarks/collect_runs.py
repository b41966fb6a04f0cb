"""Copy finished training runs' records into a results folder, small enough to commit.

For each run directory: ``config.json``, ``train_log.jsonl`` and every evaluation store under ``eval/`` (its
``run.json`` and ``episodes.jsonl``). Stored trajectories are slimmed: per turn only the action text (cut to
200 characters), the invalid flag, the env's invalid reason and the reward are kept, plus the episode's
``reward_info`` (why a WebShop purchase scored what it did: type, attribute, option and price parts; why a tau
episode failed). Token ids, log-probs, observations and messages are dropped; model weights and checkpoints are
never copied. Every flat field the summary, compare and plot commands read is kept unchanged.

    python -m hero_gym.benchmarks.collect_runs runs/sweep/* --out results/my-sweep
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

TURN_FIELDS = ("index", "invalid", "reward")


def slim_record(rec: dict) -> dict:
    """A stored EpisodeRecord dict with its trajectory reduced to per-turn action, invalid flag and reward."""
    traj = rec.get("trajectory")
    if not traj:
        return rec
    turns = [{**{k: t.get(k) for k in TURN_FIELDS}, "action": str(t.get("action", ""))[:200],
              "invalid_reason": (t.get("info") or {}).get("invalid_reason")} for t in traj.get("turns", [])]
    keep = {k: traj.get(k) for k in ("task_index", "seed", "split", "reward", "success", "termination_reason",
                                     "reward_info", "tokens_in", "tokens_out", "wall_time_s")}
    return {**rec, "trajectory": {**keep, "turns": turns}}


def collect(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Copy one run's config, training log and slimmed evaluation stores to out_dir/<run name>; return the files."""
    src, dst = Path(run_dir), Path(out_dir) / Path(run_dir).name
    written = []
    for name in ("config.json", "train_log.jsonl"):
        if (src / name).is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, dst / name)
            written.append(dst / name)
    for store in sorted(p.parent for p in src.glob("eval/*/episodes.jsonl")):
        target = dst / store.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        if (store / "run.json").is_file():
            shutil.copyfile(store / "run.json", target / "run.json")
            written.append(target / "run.json")
        lines = (store / "episodes.jsonl").read_text().splitlines()
        (target / "episodes.jsonl").write_text(
            "".join(json.dumps(slim_record(json.loads(x))) + "\n" for x in lines if x.strip()))
        written.append(target / "episodes.jsonl")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="collect_runs", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="training run directories")
    p.add_argument("--out", required=True, help="results folder")
    args = p.parse_args(argv)
    for r in args.runs:
        if not Path(r).is_dir():
            print(f"error: {r} is not a directory", file=sys.stderr)
            return 2
        files = collect(r, args.out)
        print(f"{r}: {len(files)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
