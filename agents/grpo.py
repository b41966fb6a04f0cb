"""GRPO: G rollouts per task, outcome reward, group-relative advantages, PPO-style clipped token-level update.

Every agent token of a trajectory gets that trajectory's advantage; observation tokens get nothing. The old policy
of the ratio is the one that sampled the batch (its recorded log-probs, or the trainer's forward before the first
update; see hero_gym.agents.policy_gradient). A batch of rollouts (``grad_accum`` rollout batches together) gets
``ppo_epochs`` passes, each split into mini-batches of ``mini_batch_size`` trajectories with one optimiser update
each; with one epoch and one mini-batch (the default) the update is on-policy and clipping only acts on
sampler/trainer mismatch. Optional k3 KL to a frozen reference copy of the initial model.

A batch whose groups all have equal rewards (always at G = 1) has no signal: GRPO warns once and logs
``zero_adv_groups`` every step instead of silently training on nothing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from hero_gym.agents.base import Trainer
from hero_gym.agents.policy_gradient import PGConfig, PolicyGradient, set_norms
from hero_gym.types import Trajectory


@dataclass
class GRPOConfig(PGConfig):
    """GRPO settings (the policy-gradient ones are documented on PGConfig)."""

    kl_coef: float = 0.0
    """Weight of the k3 KL to the frozen initial model (0 = no reference model is kept)."""
    ppo_epochs: int = 1
    """Optimisation passes over each batch of rollouts (PPO epochs). > 1 makes the update off-policy after the
    first mini-batch, which is where the clipping acts."""
    mini_batch_size: int | None = None
    """Trajectories per optimiser update within an epoch (shuffled by seed and step); None = the whole batch."""
    allow_single_rollout: bool = True
    """With G = 1 every advantage is 0 (no learning). True: run anyway as a no-signal control, warning once and
    logging zero_adv_groups each step; False: refuse to start."""

    def validate(self, train) -> None:
        """Raise ValueError naming the first bad setting (given the run's TrainConfig)."""
        self.check_pg(train.temperature)
        if isinstance(self.ppo_epochs, bool) or not isinstance(self.ppo_epochs, int) or self.ppo_epochs < 1:
            raise ValueError(f"ppo_epochs must be a positive integer, got {self.ppo_epochs!r}")
        m = self.mini_batch_size
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"mini_batch_size must be a positive integer or None, got {m!r}")
        if not self.kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if train.group_size == 1 and not self.allow_single_rollout:
            raise ValueError("GRPO with group_size=1 has identically zero advantages and cannot learn; use G >= 2 "
                             "or set allow_single_rollout=True to run it anyway (as a control)")


class GRPOTrainer(Trainer):
    """Outcome-reward group-relative policy optimisation over multi-turn trajectories."""

    method_name = "grpo"
    method_config: GRPOConfig
    mean_stats = ("loss", "adv_abs_mean", "clip_frac", "policy_kl", "tis_truncated_frac", "kl_ref")

    def __init__(self, config, method_config: GRPOConfig | None = None, **kwargs):
        mc = self.method_config = method_config or GRPOConfig()
        mc.validate(config)
        if config.group_size == 1:
            warnings.warn("GRPO with group_size=1: every group-relative advantage is 0, so this run has no learning "
                          "signal (a control; zero_adv_groups is logged every step)", RuntimeWarning, stacklevel=2)
        super().__init__(config, **kwargs)

    def prepare(self) -> None:
        mc = self.method_config
        self.ref_model = self.frozen_copy() if mc.kl_coef > 0 else None
        self.pg = PolicyGradient(self, mc, self.ref_model, mc.kl_coef, name="GRPO")
        self.pg.warned_no_signal = self.config.group_size == 1  # already said at start

    def extra_state(self) -> dict:
        return {"ref": self.module_state(self.ref_model)} if self.ref_model is not None else {}

    def frozen_modules(self) -> list:
        return [self.ref_model] if self.ref_model is not None else []

    def load_extra_state(self, state: dict) -> None:
        if self.ref_model is not None:
            self.load_module_state(self.ref_model, state["ref"])

    def batch_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        """The on-policy loss of one rollout batch (the first update's), backpropagated; no optimiser step."""
        return self.pg.on_policy_backward(groups, scale)

    def update(self, batches: list[list[list[Trajectory]]]) -> dict:
        """ppo_epochs x mini-batches of clipped updates on the step's rollouts (all grad_accum batches together)."""
        cfg, mc = self.config, self.method_config
        groups = [g for b in batches for g in b]
        trajs = [t for g in groups for t in g]
        with self.autocast():
            adv, zero = self.pg.advantages(groups)
            items = self.pg.turn_items(trajs, adv)
            size = mc.mini_batch_size or max(1, len(trajs))
            n_mini = max(1, math.ceil(len(trajs) / size))
            self.pg.prepare(trajs, self.pg.active(items), precompute=mc.ppo_epochs > 1 or n_mini > 1)
            sums, norms = [], []
            for epoch in range(mc.ppo_epochs):
                order = list(range(len(trajs)))
                if n_mini > 1:  # a fresh split every epoch, the same on a resumed run
                    order = np.random.default_rng([cfg.seed, self.step, epoch, self.rank]).permutation(len(trajs)).tolist()
                for start in range(0, len(order), size):
                    members = set(order[start:start + size])
                    mini = [it for it in items if it.traj_index in members]
                    set_norms(mini, mc.loss_agg)
                    self.optimizer.zero_grad(set_to_none=True)
                    sums.append(self.pg.backward(trajs, self.pg.active(mini), 1.0))
                    norms.append(self.optimizer_update())
        return {"loss": float(np.mean([s["loss"] for s in sums])) if sums else 0.0,
                "loss_tokens": sum(len(i.action_ids) for i in items),
                "active_tokens": sum(len(i.action_ids) for i in self.pg.active(items)),
                "groups": len(groups), "zero_adv_groups": zero,
                "adv_abs_mean": float(adv.abs().mean()) if len(adv) else 0.0,
                "updates": len(norms), "grad_norm": float(np.mean(norms)) if norms else 0.0,
                "grad_norm_max": max(norms, default=0.0), **self.pg.summarise(sums)}
