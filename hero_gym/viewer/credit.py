"""Reading credit records (written by hero_gym.agents.credit_log during training), with no training extra needed.

A training run keeps them in ``OUT_DIR/credit/step_NNNNN.jsonl``, one JSON line per sampled rollout; the format is
described in agents/credit_log.py.
"""

from __future__ import annotations

import json
from pathlib import Path

CREDIT_DIR = "credit"


def credit_path(run_dir: str | Path, step: int) -> Path:
    """The credit file of (1-based) `step` in a training run directory."""
    return Path(run_dir) / CREDIT_DIR / f"step_{int(step):05d}.jsonl"


def load_credit(run_dir: str | Path, step: int | None = None) -> dict[int, list[dict]]:
    """Credit records of a training run: {step: [rollout, ...]}, all steps or only `step`.

    Raises FileNotFoundError naming what exists when `step` has no record; a torn last line is skipped.
    """
    folder = Path(run_dir) / CREDIT_DIR
    files = sorted(folder.glob("step_*.jsonl"))
    steps = {int(p.stem.split("_")[1]): p for p in files}
    if step is not None:
        if step not in steps:
            have = f"steps {sorted(steps)}" if steps else "no credit records (only the distillation methods write them)"
            raise FileNotFoundError(f"{run_dir} has no credit record for step {step}; it has {have}")
        steps = {step: steps[step]}
    out = {}
    for s, p in steps.items():
        rows = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed step
        out[s] = rows
    return out
