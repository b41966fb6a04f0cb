"""On-policy self-distillation over agent turns, shared by SDPO, Full-Demo and HERO.

For each agent turn t that the method gives a privileged block, the student scores its own action tokens from its
turn-t context and the teacher (same model, or an EMA/frozen copy; no gradient) scores the same tokens from that
context plus the block. The loss is the divergence by ``alpha`` per action token, token-mean over all scored
tokens of the batch. Turns without a block contribute nothing (and are counted).

With ``rl_coef > 0`` the loss adds ``rl_coef x`` GRPO's clipped policy-gradient term over every agent token of the
batch (hero_gym.agents.policy_gradient; its settings are the PGConfig fields): "HERO alone vs HERO + GRPO" is one
setting. The RL term needs reward contrast within a group, so at G = 1 it has no signal (warned once, logged as
zero_adv_groups).

A method subclass implements :meth:`SelfDistillTrainer.privileged_block` and optionally :meth:`prepare_groups`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from hero_gym.agents.base import Trainer
from hero_gym.agents.ema import ema_update, rounding_generator
from hero_gym.agents.context import TeacherContextBuilder, TurnItem
from hero_gym.agents.credit_log import CreditLog
from hero_gym.agents.losses import token_divergence
from hero_gym.agents.policy_gradient import PGConfig, PolicyGradient
from hero_gym.agents.scoring import action_logits, chunks, trajectory_action_logits
from hero_gym.types import Trajectory

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


def load_prompt(name: str) -> str:
    """Text of a versioned template in agents/prompts (e.g. "hero_teacher_v1")."""
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        raise FileNotFoundError(f"no prompt template {name!r}; available: {known}")
    return path.read_text()


@dataclass
class DistillConfig(PGConfig):
    """Divergence settings shared by the distillation methods, and the optional RL term (PGConfig's fields)."""

    alpha: float = 0.5
    """Divergence: 0 forward KL, 1 reverse KL, in between generalised JSD (0.5 symmetric; SDPO default)."""
    topk: int | None = 100
    """Distil on the student's top-K tokens only (None = full vocabulary). SDPO default 100."""
    add_tail: bool = True
    """With top-K, add the remaining probability mass as one extra bin (else renormalise the K bins)."""
    rl_coef: float = 0.0
    """Weight of a GRPO clipped policy-gradient term added to the distillation loss (0 = distillation only). The
    paper does not settle whether HERO uses one; this is the "HERO alone vs HERO + GRPO" ablation. One on-policy
    update per batch; needs G >= 2 for a signal."""

    def validate(self, train) -> None:
        """Raise ValueError naming the first bad setting (given the run's TrainConfig)."""
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.topk is not None and (isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1):
            raise ValueError(f"topk must be a positive integer or None, got {self.topk!r}")
        if not self.rl_coef >= 0:
            raise ValueError(f"rl_coef must be >= 0, got {self.rl_coef}")
        if self.rl_coef > 0:
            self.check_pg(train.temperature)


class SelfDistillTrainer(Trainer):
    """Trainer base for the self-distillation methods."""

    method_config: DistillConfig
    mean_stats = ("loss", "distill_loss", "rl_loss", "clip_frac", "policy_kl", "tis_truncated_frac", "adv_abs_mean")
    rate_stats = {"selected_frac": ("scored_turns", "turns")}

    def __init__(self, config, method_config: DistillConfig | None = None, **kwargs):
        self.method_config = method_config or self.default_method_config()
        self.method_config.validate(config)
        super().__init__(config, **kwargs)

    def default_method_config(self) -> DistillConfig:
        return DistillConfig()

    def prepare(self) -> None:
        self.teacher_builder = TeacherContextBuilder(self.tokenizer, self.config.max_privileged_tokens)
        teacher = self.config.teacher
        # ema-bf16: half the copy's memory; ema_update rounds stochastically (agents/ema.py)
        self.teacher_model = None if teacher == "current" else self.frozen_copy(
            torch.bfloat16 if teacher == "ema-bf16" else None)
        self.pg = None
        if self.method_config.rl_coef > 0:
            self.pg = PolicyGradient(self, self.method_config, name=f"{self.method_name} rl_coef term")
            if self.config.group_size == 1:
                self.pg.warned_no_signal = True
                warnings.warn(f"{self.method_name}: rl_coef > 0 with group_size=1: the RL term's advantages are all 0, "
                              "so only distillation trains", RuntimeWarning, stacklevel=2)
        self.credit_log = CreditLog(self)

    def extra_state(self) -> dict:
        return {"teacher": self.module_state(self.teacher_model)} if self.teacher_model is not None else {}

    def frozen_modules(self) -> list[torch.nn.Module]:
        return [self.teacher_model] if self.teacher_model is not None else []

    def load_extra_state(self, state: dict) -> None:
        if self.teacher_model is not None:
            self.load_module_state(self.teacher_model, state["teacher"])

    def after_optimizer_step(self) -> None:
        if self.config.teacher in ("ema", "ema-bf16"):
            gen = rounding_generator(self.config.seed, self.step, self.device)
            ema_update(self.teacher_model, self.model, self.config.teacher_update_rate, gen)
        super().after_optimizer_step()

    # ----- what each method defines -----------------------------------------------------------------------------
    def prepare_groups(self, groups: list[list[Trajectory]]) -> None:
        """Hook run once per batch before blocks are asked for (HERO reflects here and fills selection_stats)."""

    @property
    def selection_stats(self) -> dict:
        """Per-batch counts of why turns were or were not selected (logged with the step; HERO's reflection)."""
        return {}

    def privileged_block(self, traj: Trajectory, turn: int, group: list[Trajectory]) -> str | None:
        """The privileged text the teacher sees before turn `turn`'s action, or None for no loss on that turn."""
        raise NotImplementedError

    # ----- the shared loss --------------------------------------------------------------------------------------
    def build_items(self, groups: list[list[Trajectory]]) -> list[TurnItem]:
        """One item per agent turn that gets a block: student ids from the trajectory, teacher ids = + block."""
        self.prepare_groups(groups)
        items: list[TurnItem] = []
        k = 0
        for group in groups:
            for traj in group:
                for t, turn in enumerate(traj.turns):
                    if not turn.action_token_ids:
                        continue
                    block = self.privileged_block(traj, t, group)
                    if block is None:
                        self.count("turns_without_block")
                        continue
                    s_ids = self.student_ids(traj, t)
                    items.append(TurnItem(k, t, s_ids, list(turn.action_token_ids),
                                          self.teacher_builder.build(s_ids, block), extra={"block": block}))
                k += 1
        return items

    def teacher_logits(self, items: list[TurnItem]) -> torch.Tensor:
        model = self.teacher_model if self.teacher_model is not None else self.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits, _, _ = action_logits(model, [i.teacher_ids for i in items], [i.action_ids for i in items],
                                         self.pad_id, self.config.temperature)
        model.train(was_training)
        return logits

    def batch_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        stats = self.distill_loss(groups, scale)
        stats["distill_loss"] = stats["loss"]
        if self.pg is not None:
            coef = self.method_config.rl_coef
            rl = self.pg.on_policy_backward(groups, scale * coef)
            stats.update({k: v for k, v in rl.items() if k not in ("loss", "loss_tokens")})
            stats["rl_loss"] = rl["loss"]
            stats["rl_tokens"] = rl["loss_tokens"]
            stats["loss"] += coef * rl["loss"]
        return stats

    def distill_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        """The distillation term of one rollout batch, backpropagated (``scale x``); returns its stats."""
        items = self.build_items(groups)
        total = sum(len(i.action_ids) for i in items)
        n_turns = sum(len(t.turns) for g in groups for t in g)
        stats = {"loss": 0.0, "loss_tokens": total, "scored_turns": len(items), "turns": n_turns,
                 **self.selection_stats}
        credit = self.credit_log.batch(groups)  # keeps the per-token losses of a few rollouts (agents/credit_log.py)
        if not total:
            credit.write()
            return stats
        trajs = [t for g in groups for t in g]
        whole, per_turn = self.split_by_pass(trajs, items)
        for traj, its in whole:
            # One student forward for the whole trajectory; teacher contexts batched per micro-batch of turns.
            spans = traj.turn_spans()
            end = spans[max(i.turn_index for i in its)][1]
            s_list = trajectory_action_logits(self.model, traj.token_ids()[:end], [spans[i.turn_index] for i in its],
                                              self.config.temperature)
            loss = 0.0
            for start in range(0, len(its), self.config.micro_batch_size):
                chunk = its[start:start + self.config.micro_batch_size]
                t_logits = self.teacher_logits(chunk)
                for j, it in enumerate(chunk):
                    n = len(it.action_ids)
                    div = self._divergence(s_list[start + j], t_logits[j, -n:])
                    credit.add(it, div)
                    loss = loss + div.sum()
            self._step_loss(loss / total, scale, stats)
        for chunk in chunks(per_turn, self.config.micro_batch_size):
            t_logits = self.teacher_logits(chunk)
            s_logits, _, mask = action_logits(self.model, [i.student_ids for i in chunk],
                                              [i.action_ids for i in chunk], self.pad_id, self.config.temperature)
            div = self._divergence(s_logits, t_logits) * mask
            for j, it in enumerate(chunk):
                credit.add(it, div[j, div.shape[1] - len(it.action_ids):])
            self._step_loss(div.sum() / total, scale, stats)
        credit.write()
        return stats

    def _divergence(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        mc = self.method_config
        return token_divergence(s_logits, t_logits, mc.alpha, mc.topk, mc.add_tail)

    def _step_loss(self, loss: torch.Tensor, scale: float, stats: dict) -> None:
        self.backward(loss * scale)
        stats["loss"] += float(loss.detach())
