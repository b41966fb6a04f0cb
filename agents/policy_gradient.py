"""The clipped policy-gradient term: all of GRPO's loss, and the optional RL term of the distillation methods.

Advantages are group-relative outcome rewards (the env reward, plus ``success_bonus`` on a successful episode):
every agent token of a trajectory gets its trajectory's advantage, observation tokens get nothing. The surrogate
is PPO's clipped ratio r = pi_theta / pi_old per token, where pi_old is the policy that sampled the batch, read one
of two ways (``old_logprobs``):

- ``rollout``: the log-probs the sampler recorded for each sampled token (``Turn.action_logprobs``), i.e. the
  behaviour policy itself. Sampler/trainer numerical differences then count as policy change and get clipped. The
  samplers (HF, vLLM) record the raw temperature-1 distribution, so this needs ``temperature == 1``. Turns without
  recorded log-probs (scripted or HTTP policies) are recomputed instead and counted.
- ``recompute``: the trainer's own forward with the weights that sampled the batch, before the first update (free
  when a batch gets one update: the same forward's detached values). With ``tis_cap`` every token's surrogate is
  weighted by ``min(pi_old / pi_sampler, tis_cap)``, the truncated importance-sampling correction for a sampler
  whose numbers differ from the trainer's (vLLM or bf16 sampling vs an fp32 forward).
- ``auto`` (default): ``rollout`` at temperature 1 without ``tis_cap``, else ``recompute``.

With one update per batch the ratio is ~1 and clipping only acts on sampler/trainer mismatch; with several
epochs or mini-batches (GRPO's ``ppo_epochs`` / ``mini_batch_size``) it bounds how far later updates move.

Aggregation (``loss_agg``): ``token-mean`` divides the summed token losses by the number of agent tokens of the
(mini-)batch, zero-advantage tokens included; ``sequence-mean`` averages each trajectory's token-mean over the
trajectories that have agent tokens.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from hero_gym.agents.context import TurnItem
from hero_gym.agents.losses import group_advantages, pg_token_losses
from hero_gym.agents.scoring import action_logits, chunks, token_logprobs, trajectory_action_logits
from hero_gym.types import Trajectory

LOSS_AGGS = ("token-mean", "sequence-mean")
OLD_LOGPROBS = ("auto", "rollout", "recompute")


@dataclass
class PGConfig:
    """Settings of the clipped policy-gradient term (GRPO, and the distillation methods' RL term)."""

    normalize_std: bool = True
    """Divide advantages by the group's reward std (Dr.GRPO / SDPO's baseline turn this off)."""
    success_bonus: float = 0.0
    """Added to the env reward of a successful episode before the group advantages (0 = the env reward as is).
    WebShop pays partial reward for a purchase that misses the goal's options, so a group's contrast is mostly
    "bought vs ran out of turns"; a bonus makes a full success stand out from a partial purchase."""
    clip_low: float = 0.2
    """Lower clip range of the ratio (1 - clip_low)."""
    clip_high: float = 0.28
    """Upper clip range of the ratio (1 + clip_high; SDPO's GRPO baseline uses 0.28)."""
    loss_agg: str = "token-mean"
    """token-mean (summed token losses / agent tokens of the batch) or sequence-mean (mean over trajectories of
    each trajectory's token-mean)."""
    old_logprobs: str = "auto"
    """Where pi_old comes from: rollout (the sampler's recorded log-probs; needs temperature 1), recompute (the
    trainer's forward before the first update) or auto (rollout at temperature 1 without tis_cap, else recompute)."""
    tis_cap: float | None = None
    """Truncated importance sampling: weight each token by min(pi_old / pi_sampler, tis_cap) to correct for a
    sampler whose log-probs differ from the trainer's (vLLM, bf16). None = off (the CPU default: HF sampling in
    fp32 matches the trainer). Needs old_logprobs recompute or auto."""

    def check_pg(self, temperature: float) -> None:
        """Raise ValueError naming the first bad policy-gradient setting."""
        if self.loss_agg not in LOSS_AGGS:
            raise ValueError(f"loss_agg must be one of {LOSS_AGGS}, got {self.loss_agg!r}")
        if self.old_logprobs not in OLD_LOGPROBS:
            raise ValueError(f"old_logprobs must be one of {OLD_LOGPROBS}, got {self.old_logprobs!r}")
        if not (math.isfinite(self.success_bonus) and self.success_bonus >= 0):
            raise ValueError(f"success_bonus must be a finite number >= 0, got {self.success_bonus}")
        if self.clip_low < 0 or self.clip_high < 0:
            raise ValueError(f"clip_low and clip_high must be >= 0, got {self.clip_low}, {self.clip_high}")
        if self.tis_cap is not None and not self.tis_cap > 0:
            raise ValueError(f"tis_cap must be > 0 or None, got {self.tis_cap}")
        if self.old_logprobs == "rollout" and self.tis_cap is not None:
            raise ValueError("tis_cap corrects recomputed old log-probs towards the sampler's; "
                             "use old_logprobs=recompute (or auto) with it")
        if self.old_logprobs == "rollout" and temperature != 1.0:
            raise ValueError(f"old_logprobs=rollout needs temperature 1 (samplers record raw log-probs), got "
                             f"temperature {temperature}; use old_logprobs=recompute")

    def resolved_old_logprobs(self, temperature: float) -> str:
        if self.old_logprobs != "auto":
            return self.old_logprobs
        return "rollout" if temperature == 1.0 and self.tis_cap is None else "recompute"


def set_norms(items: list[TurnItem], agg: str) -> int:
    """Attach each item's per-token loss weight (``extra["norm"]``) for `agg` over `items`; return their token count."""
    per_traj: dict[int, int] = {}
    for it in items:
        per_traj[it.traj_index] = per_traj.get(it.traj_index, 0) + len(it.action_ids)
    total = sum(per_traj.values())
    for it in items:
        it.extra["norm"] = 1.0 / total if agg == "token-mean" else 1.0 / (per_traj[it.traj_index] * len(per_traj))
    return total


class PolicyGradient:
    """The clipped PG term over a trainer's model (scoring passes, old/ref log-probs, backward)."""

    def __init__(self, trainer, config: PGConfig, ref_model=None, kl_coef: float = 0.0, name: str = "GRPO"):
        self.trainer = trainer
        self.config = config
        self.ref_model = ref_model
        self.kl_coef = kl_coef
        self.name = name
        self.mode = config.resolved_old_logprobs(trainer.config.temperature)
        self.warned_no_signal = False

    # ----- advantages and items -------------------------------------------------------------------------------
    def advantages(self, groups: list[list[Trajectory]]) -> tuple[torch.Tensor, int]:
        """Group-relative advantages (flat, group by group) and the number of groups with no reward contrast.

        Warns once per run when a whole batch has no contrast (every advantage 0: the term has no signal)."""
        shaped = [[self.shaped_reward(t) for t in g] for g in groups]
        adv = group_advantages([r for g in shaped for r in g], self.trainer.config.group_size,
                               self.config.normalize_std, on_single="zero")
        zero = sum(1 for g in shaped if max(g) == min(g))
        if groups and zero == len(groups) and not self.warned_no_signal:
            self.warned_no_signal = True
            warnings.warn(f"{self.name}: every group of this batch has equal rewards, so every advantage is 0 and the "
                          "policy gradient has no signal (logged per step as zero_adv_groups; warned once)",
                          RuntimeWarning, stacklevel=2)
        return adv, zero

    def shaped_reward(self, traj: Trajectory) -> float:
        """The reward the advantages see: the env's, plus success_bonus when the episode succeeded."""
        return traj.reward + (self.config.success_bonus if traj.success else 0.0)

    def turn_items(self, trajs: list[Trajectory], adv: torch.Tensor) -> list[TurnItem]:
        """One item per agent turn with action tokens, weight = its trajectory's advantage."""
        return [TurnItem(k, i, self.trainer.student_ids(tr, i), list(turn.action_token_ids), weight=float(adv[k]))
                for k, tr in enumerate(trajs) for i, turn in enumerate(tr.turns) if turn.action_token_ids]

    def active(self, items: list[TurnItem]) -> list[TurnItem]:
        """Items with a gradient: all with a KL term, else those with a non-zero advantage."""
        return list(items) if self.ref_model is not None and self.kl_coef > 0 else [i for i in items if i.weight != 0.0]

    # ----- scoring ---------------------------------------------------------------------------------------------
    def logprob_passes(self, model, trajs: list[Trajectory], items: list[TurnItem]):
        """Yield ``(items, [log-probs of each item's action tokens])`` per forward pass: one pass per trajectory
        that fits the context cap (student_pass=trajectory), else micro-batches of turns."""
        cfg = self.trainer.config
        whole, per_turn = self.trainer.split_by_pass(trajs, items)
        for traj, its in whole:
            spans = traj.turn_spans()
            ids = traj.token_ids()[:spans[max(i.turn_index for i in its)][1]]
            logits = trajectory_action_logits(model, ids, [spans[i.turn_index] for i in its], cfg.temperature)
            yield its, [token_logprobs(lg, torch.tensor(i.action_ids, device=lg.device)) for lg, i in zip(logits, its)]
        for chunk in chunks(per_turn, cfg.micro_batch_size):
            logits, targets, _ = action_logits(model, [i.student_ids for i in chunk], [i.action_ids for i in chunk],
                                               self.trainer.pad_id, cfg.temperature)
            lp = token_logprobs(logits, targets)
            yield chunk, [lp[j, lp.shape[1] - len(i.action_ids):] for j, i in enumerate(chunk)]

    def prepare(self, trajs: list[Trajectory], items: list[TurnItem], precompute: bool) -> None:
        """Attach the sampler's log-probs (``extra["rollout"]``), pi_old (``extra["old"]``; None = take it from the
        first update's own forward, only valid without `precompute`) and the reference's (``extra["ref"]``)."""
        for it in items:
            lp = trajs[it.traj_index].turns[it.turn_index].action_logprobs
            ok = lp is not None and len(lp) == len(it.action_ids)
            it.extra["rollout"] = torch.tensor(lp, dtype=torch.float64) if ok else None
            it.extra["old"] = it.extra["rollout"] if self.mode == "rollout" else None
        missing = [it for it in items if it.extra["old"] is None]
        if self.mode == "rollout" and missing:
            self.trainer.count("old_logp_recomputed_turns", len(missing))
        with torch.no_grad():
            if precompute and missing:
                for its, lps in self.logprob_passes(self.trainer.model, trajs, missing):
                    for it, lp in zip(its, lps):
                        it.extra["old"] = lp.detach()
            if self.ref_model is not None and self.kl_coef > 0 and items:
                for its, lps in self.logprob_passes(self.ref_model, trajs, items):
                    for it, lp in zip(its, lps):
                        it.extra["ref"] = lp

    # ----- the loss ----------------------------------------------------------------------------------------------
    def backward(self, trajs: list[Trajectory], items: list[TurnItem], scale: float) -> dict:
        """Backpropagate ``scale x`` the clipped loss of `items` (norms and old log-probs attached); return sums:
        loss, tokens, clipped_tokens, tis_truncated_tokens, policy_kl_sum (k3 of pi_theta vs pi_old), kl_ref_sum."""
        mc = self.config
        s = {"loss": 0.0, "tokens": 0, "clipped_tokens": 0, "tis_truncated_tokens": 0, "policy_kl_sum": 0.0,
             "kl_ref_sum": 0.0}
        for its, lps in self.logprob_passes(self.trainer.model, trajs, items):
            logp = torch.cat(lps)
            dev, dt = logp.device, logp.dtype

            def cat(vals):
                return torch.cat([torch.as_tensor(v, device=dev).to(dt).reshape(-1) for v in vals])

            old = cat([it.extra["old"] if it.extra["old"] is not None else lp.detach() for it, lp in zip(its, lps)])
            adv = cat([torch.full((len(it.action_ids),), it.weight) for it in its])
            norm = cat([torch.full((len(it.action_ids),), it.extra["norm"]) for it in its])
            ref = cat([it.extra["ref"] for it in its]) if "ref" in its[0].extra else None
            weight = None
            if mc.tis_cap is not None:
                # Tokens without sampler log-probs keep weight 1 (nothing to correct against).
                raw = cat([o - it.extra["rollout"].to(dev, dt) if it.extra["rollout"] is not None else
                           torch.zeros(len(it.action_ids), device=dev, dtype=dt)
                           for it, o in zip(its, torch.split(old, [len(i.action_ids) for i in its]))]).exp()
                weight = raw.clamp(max=mc.tis_cap)
                s["tis_truncated_tokens"] += int((raw > mc.tis_cap).sum())
            per_token, clipped, kl = pg_token_losses(logp, old, adv, mc.clip_low, mc.clip_high, ref, self.kl_coef,
                                                     weight)
            loss = (per_token * norm).sum()
            self.trainer.backward(loss * scale)
            d = (old - logp).detach()
            s["loss"] += float(loss.detach())
            s["tokens"] += logp.numel()
            s["clipped_tokens"] += int(clipped.sum())
            s["policy_kl_sum"] += float((d.exp() - d - 1).sum())
            if kl is not None:
                s["kl_ref_sum"] += float(kl.detach().sum())
        return s

    def on_policy_backward(self, groups: list[list[Trajectory]], scale: float) -> dict:
        """One on-policy pass over a rollout batch (no optimiser step): backpropagate ``scale x`` the loss and
        return the batch's stats (loss, loss_tokens, active_tokens, groups, zero_adv_groups, adv_abs_mean, ...)."""
        trajs = [t for g in groups for t in g]
        adv, zero = self.advantages(groups)
        items = self.turn_items(trajs, adv)
        total = set_norms(items, self.config.loss_agg)
        active = self.active(items)
        self.prepare(trajs, active, precompute=False)
        s = self.backward(trajs, active, scale)
        return {"loss": s["loss"], "loss_tokens": total, "active_tokens": s["tokens"], "groups": len(groups),
                "zero_adv_groups": zero, "adv_abs_mean": float(adv.abs().mean()) if len(adv) else 0.0,
                **self.summarise([s])}

    def summarise(self, sums: list[dict]) -> dict:
        """Per-token means over one or several :meth:`backward` results: clip_frac, policy_kl (k3 of pi_theta vs
        pi_old), and tis_truncated_frac / kl_ref when those options are on."""
        tokens = max(1, sum(s["tokens"] for s in sums))
        out = {"clip_frac": sum(s["clipped_tokens"] for s in sums) / tokens,
               "policy_kl": sum(s["policy_kl_sum"] for s in sums) / tokens}
        if self.config.tis_cap is not None:
            out["tis_truncated_frac"] = sum(s["tis_truncated_tokens"] for s in sums) / tokens
        if self.ref_model is not None and self.kl_coef > 0:
            out["kl_ref"] = sum(s["kl_ref_sum"] for s in sums) / tokens
        return out
