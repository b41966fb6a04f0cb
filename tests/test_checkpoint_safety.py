"""Trainer checkpoints are data, never code: loading one cannot run anything planted in it."""

import json
import random

import numpy as np
import pytest
import torch

from hero_gym.agents.checkpoint import META_FILE, STATE_FILE, load_checkpoint, rng_state, save_checkpoint, set_rng_state


class _Planted:
    """What an attacker would put in a checkpoint: unpickling it calls open(marker, "w")."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    ck = tmp_path / "checkpoint"
    ck.mkdir()
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Planted(marker)}, ck / STATE_FILE)
    (ck / META_FILE).write_text(json.dumps({"step": 3}))
    with pytest.raises(ValueError, match="could run code; it was not loaded"):
        load_checkpoint(ck)
    assert not marker.exists()


def test_a_trainer_state_round_trips_under_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in the NumPy state
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "rng": rng_state(), "extra": {"teacher": model.state_dict()}, "counters": {"episodes": 4}}
    save_checkpoint(tmp_path / "ck", state, {"step": 7})
    expected = (random.random(), np.random.randn(), torch.rand(1).item())
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"step": 7} and loaded["counters"] == {"episodes": 4}
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.randn(), torch.rand(1).item()) == expected
    opt.load_state_dict(loaded["optimizer"])
    sched.load_state_dict(loaded["scheduler"])
    assert torch.equal(loaded["model"]["weight"], model.state_dict()["weight"])
