"""GRPO: G rollouts per task, outcome reward, group-relative advantages, clipped token-level policy gradient.

Every agent token of a trajectory gets that trajectory's advantage; observation tokens get nothing. One gradient
step per rollout batch (on-policy, so the ratio is 1 and clipping only matters with ``grad_accum`` stale batches
or a vLLM/trainer mismatch). Optional k3 KL to a frozen reference copy of the initial model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hero_gym.agents.base import Trainer, clone_frozen
from hero_gym.agents.context import TurnItem, student_context
from hero_gym.agents.losses import clipped_pg_loss, group_advantages
from hero_gym.agents.scoring import action_logits, chunks, token_logprobs, trajectory_action_logits
from hero_gym.types import Trajectory


@dataclass
class GRPOConfig:
    """GRPO settings."""

    normalize_std: bool = True
    """Divide advantages by the group's reward std (Dr.GRPO / SDPO's baseline turn this off)."""
    clip_low: float = 0.2
    """Lower clip range of the ratio (1 - clip_low)."""
    clip_high: float = 0.28
    """Upper clip range of the ratio (1 + clip_high; SDPO's GRPO baseline uses 0.28)."""
    kl_coef: float = 0.0
    """Weight of the k3 KL to the frozen initial model (0 = no reference model is kept)."""
    allow_single_rollout: bool = False
    """With G = 1 every advantage is 0 (no learning). False: refuse to start; True: warn and train anyway."""


class GRPOTrainer(Trainer):
    """Outcome-reward group-relative policy optimisation over multi-turn trajectories."""

    method_name = "grpo"

    def __init__(self, config, method_config: GRPOConfig | None = None, **kwargs):
        self.method_config = method_config or GRPOConfig()
        if config.group_size == 1 and not self.method_config.allow_single_rollout:
            raise ValueError("GRPO with group_size=1 has identically zero advantages and cannot learn; use G >= 2 "
                             "or set allow_single_rollout=True to run it anyway (as a control)")
        super().__init__(config, **kwargs)

    def prepare(self) -> None:
        self.ref_model = clone_frozen(self.model) if self.method_config.kl_coef > 0 else None

    def extra_state(self) -> dict:
        return {"ref": self.ref_model.state_dict()} if self.ref_model is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.ref_model is not None:
            self.ref_model.load_state_dict(state["ref"])

    def batch_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        cfg, mc = self.config, self.method_config
        trajs = [t for g in groups for t in g]
        adv = group_advantages([t.reward for t in trajs], cfg.group_size, mc.normalize_std,
                               on_single="warn" if mc.allow_single_rollout else "raise")
        items = [TurnItem(k, i, student_context(tr, i, cfg.max_context_tokens), list(turn.action_token_ids),
                          weight=float(adv[k]))
                 for k, tr in enumerate(trajs) for i, turn in enumerate(tr.turns) if turn.action_token_ids]
        # Token-mean over every agent token of the batch (zero-advantage tokens count in the mean but need no pass).
        total = sum(len(it.action_ids) for it in items)
        # With a KL term every token has a gradient; without it zero-advantage turns can be skipped.
        active = items if self.ref_model is not None else [it for it in items if it.weight != 0.0]
        stats = {"loss": 0.0, "loss_tokens": total, "active_tokens": sum(len(i.action_ids) for i in active),
                 "adv_abs_mean": float(adv.abs().mean()) if len(adv) else 0.0}
        whole, per_turn = self.split_by_pass(trajs, active)
        for traj, its in whole:
            spans = traj.turn_spans()
            ids = traj.token_ids()[:spans[max(i.turn_index for i in its)][1]]
            sel = [spans[i.turn_index] for i in its]
            logits = torch.cat(trajectory_action_logits(self.model, ids, sel, cfg.temperature))
            targets = torch.tensor([t for s, e in sel for t in ids[s:e]], device=logits.device)
            ref = None
            if self.ref_model is not None:
                with torch.no_grad():
                    ref = token_logprobs(torch.cat(trajectory_action_logits(self.ref_model, ids, sel, cfg.temperature)),
                                         targets)
            a = torch.tensor([i.weight for i in its for _ in i.action_ids], device=logits.device)
            self._pg_step(token_logprobs(logits, targets), a, torch.ones_like(a), ref, total, scale, stats)
        for chunk in chunks(per_turn, cfg.micro_batch_size):
            ctxs, acts = [i.student_ids for i in chunk], [i.action_ids for i in chunk]
            logits, targets, mask = action_logits(self.model, ctxs, acts, self.pad_id, cfg.temperature)
            ref = None
            if self.ref_model is not None:
                with torch.no_grad():
                    rl, _, _ = action_logits(self.ref_model, ctxs, acts, self.pad_id, cfg.temperature)
                    ref = token_logprobs(rl, targets)
            logp = token_logprobs(logits, targets)
            a = torch.tensor([i.weight for i in chunk], device=logp.device, dtype=logp.dtype)[:, None].expand_as(logp)
            self._pg_step(logp, a, mask, ref, total, scale, stats)
        return stats

    def _pg_step(self, logp, adv, mask, ref, total, scale, stats) -> None:
        mc = self.method_config
        adv = adv.to(logp.dtype)
        mean, s = clipped_pg_loss(logp, logp.detach(), adv, mask.to(logp.dtype), mc.clip_low, mc.clip_high, ref, mc.kl_coef)
        n = float(mask.sum())
        loss = mean * n / total
        self.backward(loss * scale)
        stats["loss"] += float(loss.detach())
        for k, v in s.items():
            stats[k] = stats.get(k, 0.0) + v * n / max(1, stats["active_tokens"])
