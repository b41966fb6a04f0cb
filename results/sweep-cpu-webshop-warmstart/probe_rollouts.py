"""Shared by the probes (teacher_probe.py, sdpo_probe.py): rebuild a run's trainer at step 0 from its config.json
and redraw its first rollouts, checked against the run's own step-1 credit log."""
import dataclasses
import json
import tempfile
from pathlib import Path

from hero_gym.agents.base import TrainConfig


def rebuild(run: str, trainer_cls, config_cls):
    """The run's trainer with the run's settings and the Base weights (no resume), in eval mode, writing to a tmp dir."""
    conf = json.loads((Path(run) / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train = {k: v for k, v in conf["train"].items() if k in fields}
    train.update(out_dir=tempfile.mkdtemp(prefix="probe-"), eval_split=None, progress=False)
    tr = trainer_cls(TrainConfig(**train), config_cls(**conf["method_config"]), resume=False)
    tr.model.eval()
    return tr


def rollouts(tr, run: str, steps: int):
    """[(step, groups)] for the first `steps` steps and how many step-1 episodes equal the run's credit log (all, or
    SystemExit: then the trainer is not at the run's starting point)."""
    logged = [json.loads(x) for x in (Path(run) / "credit" / "step_00001.jsonl").read_text().splitlines()]
    out = []
    for step in range(steps):
        groups = tr.collect(step, 0)
        if step == 0:
            mine = [[t.action for t in traj.turns] for g in groups for traj in g]
            theirs = [[t["action"] for t in r["turns"]] for r in logged]
            if mine[:len(theirs)] != theirs:
                raise SystemExit("step-1 rollouts differ from the run's credit log: not the run's starting point")
        out.append((step, groups))
    return out, len(logged)
