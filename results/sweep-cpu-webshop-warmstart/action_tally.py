"""Tally the training rollouts' actions per step from a run's credit logs (credit/step_N.jsonl): how many of the
logged agent turns were `click[buy now]`, and the invalid-turn rate from train_log.jsonl.

    python results/sweep-cpu-webshop-warmstart/action_tally.py results/sweep-cpu-webshop-warmstart/full-demo-B4-s0
"""

import json
import sys
from pathlib import Path

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
        print(f"  step {step}: click[buy now] in {buy} of {len(turns)} logged turns; invalid turns {invalid.get(step, float('nan')):.2f}")
