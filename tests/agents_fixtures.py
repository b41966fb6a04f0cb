"""Shared pieces of the trainer tests: a three-turn toy env, a scripted reflector, and a trainer builder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch

from hero_gym.agents import TrainConfig, make_trainer
from hero_gym.agents.full_demo import FullDemoConfig
from hero_gym.agents.grpo import GRPOConfig
from hero_gym.agents.hero import HEROConfig
from hero_gym.agents.sdpo import SDPOConfig
from hero_gym.env import TextEnv
from hero_gym.policies.base import CallablePolicy
from hero_gym.policies.models import tiny_model
from hero_gym.rollout import run_episodes

SECRET = "ZEBRA-DIAGNOSIS"  # text only a reflector writes; must never reach a student context


class CountE(TextEnv):
    """Three-turn toy task: the final reward is the share of 'e' letters asked for; every reply is unique."""

    default_max_turns = 3

    def __init__(self, split="train", max_turns=None, **_):
        super().__init__(max_turns=max_turns)

    def _num_tasks(self):
        return 6

    def _reset_task(self, i):
        return f"Task {i}: write the letter e as often as you can.", {}

    def _step_turn(self, action):
        if self._turns >= 3:
            return f"REPLY-{self._turns}: finished", min(1.0, action.count("e") / 4), True, None, {}
        # Odd-length answers are "invalid" (the env still answers), so rollouts have an invalid-action rate.
        return (f"REPLY-{self._turns}: you wrote {len(action)} characters", 0.0, False, None,
                {"invalid": len(action) % 2 == 1})


def toy_rollout(env_id, policy, specs, **kw):
    return run_episodes(CountE, policy, specs, **kw)


def scripted_reflector(turns_to_diagnose=(1,)):
    def reflect(messages, tools):
        return "\n".join(json.dumps({"turn": t, "necessary": False, "valid": True, "cause": f"{SECRET} on turn {t}"})
                         for t in turns_to_diagnose)
    return CallablePolicy(reflect, name="scripted-reflector")


def config(tmp_path, method, **kw):
    base = dict(env_id="hero_gym/WebShop-v0", split="train", tasks=[0, 1, 2, 3], method=method, group_size=2,
                tasks_per_step=2, steps=2, max_new_tokens=10, lr=1e-2, out_dir=str(tmp_path / method), save_every=1,
                micro_batch_size=3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


METHOD_CONFIGS = {
    "grpo": lambda: GRPOConfig(),
    "sdpo": lambda: SDPOConfig(topk=20),
    "full-demo": lambda: FullDemoConfig(topk=20, success_threshold=0.0),  # every sibling counts as a demo
    "hero": lambda: HEROConfig(topk=20),
}


def build(tmp_path, method, model_seed=0, cfg_kw=None, mc=None, **kw):
    """A trainer of `method` on CountE with a tiny model; `mc` replaces the method config of METHOD_CONFIGS."""
    model, tok = tiny_model(seed=model_seed)
    if method == "hero":
        kw.setdefault("reflector", scripted_reflector((1, 3)))
    return make_trainer(config(tmp_path, method, **(cfg_kw or {})), mc or METHOD_CONFIGS[method](), model=model,
                        tokenizer=tok, **{"rollout_fn": toy_rollout, **kw})


def loss_before_and_after(tr, updates: int) -> tuple[float, float]:
    """The batch loss of one fixed rollout batch before and after `updates` optimiser steps on that batch."""
    groups = tr.collect(0, 0)
    with torch.no_grad():
        first = tr.batch_loss(groups, 1.0)["loss"]
    for _ in range(updates):
        tr.optimizer.zero_grad()
        tr.batch_loss(groups, 1.0)
        tr.optimizer.step()
    with torch.no_grad():
        last = tr.batch_loss(groups, 1.0)["loss"]
    return first, last


def run_two_ranks(script, timeout: float) -> subprocess.CompletedProcess:
    """Run `script` as 2 ranks under torchrun (Gloo on CPU); on timeout kill the launcher and both ranks (a rank
    waiting in a collective must not outlive the test) and fail."""
    import pytest

    # --standalone: a free rendezvous port, so parallel runs on one machine do not collide on 29500
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"2-rank training did not finish within {timeout}s (a rank waiting in a collective?)")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
