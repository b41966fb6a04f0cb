"""Tally the training rollouts' actions per step from a run's credit logs (credit/step_N.jsonl): how many of the
logged agent turns were `click[buy now]`, the invalid-turn rate from train_log.jsonl, and where the distillation
loss sits: the mean per-token loss (JSD) on the first token of turn-0 actions (the search page), on the first token
of later turns' actions, and on every other action token.

    python results/sweep-cpu-webshop-warmstart/action_tally.py results/sweep-cpu-webshop-warmstart/full-demo-B4-s0
"""

import json
import sys
from pathlib import Path
from statistics import mean


def _mean(xs):
    return f"{mean(xs):.3f}" if xs else "-"


for run in map(Path, sys.argv[1:]):
    invalid = {}
    for line in (run / "train_log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        invalid[rec["step"]] = rec["invalid_action_rate"]
    print(run.name)
    for f in sorted((run / "credit").glob("step_*.jsonl")):
        step = int(f.stem.split("_")[1])
        turns = [t for line in f.read_text().splitlines() for t in json.loads(line)["turns"]]
        buy = sum("buy now" in t["action"] for t in turns)
        scored = [t for t in turns if t.get("loss")]
        first0 = [t["loss"][0] for t in scored if t["turn"] == 0]
        later = [t["loss"][0] for t in scored if t["turn"] > 0]
        rest = [x for t in scored for x in t["loss"][1:]]
        print(f"  step {step}: click[buy now] in {buy} of {len(turns)} logged turns; invalid turns "
              f"{invalid.get(step, float('nan')):.2f}; loss on the first token: turn 0 {_mean(first0)}, later turns "
              f"{_mean(later)}; other tokens {_mean(rest)}")
