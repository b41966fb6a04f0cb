"""Per-token losses shared by the trainers: divergences between a student and a (stop-gradient) teacher, GRPO's
group-relative advantages and its clipped policy-gradient loss.

Conventions (kept identical to SDPO's released trainer, see shared/docs/methods.md §5.2):

- ``alpha`` picks the divergence between the student distribution ``p_S`` and the teacher's ``p_T``:
  ``alpha == 0`` is the forward KL ``KL(p_T || p_S)``, ``alpha == 1`` the reverse KL ``KL(p_S || p_T)``, and
  ``0 < alpha < 1`` the generalised Jensen-Shannon divergence
  ``(1 - alpha) * KL(p_S || M) + alpha * KL(p_T || M)`` with ``M = (1 - alpha) * p_S + alpha * p_T``
  (``alpha = 0.5`` is the symmetric JSD). The end points are defined separately because the mixture form
  vanishes there; divided by ``alpha`` (or ``1 - alpha``) it tends to the forward (or reverse) KL.
- Top-K: the K ids are the *student's* most likely tokens; both distributions are read at those ids, and either a
  tail bucket holding the remaining probability mass is appended (K + 1 bins) or the K bins are renormalised.
- All reductions over tokens are a masked mean over agent tokens (token-mean).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

# log(1 - p) is undefined at p == 1; capping the top-K log-mass just below 0 keeps the tail finite.
_MAX_TOPK_LOGMASS = -1e-7


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0 or math.isnan(alpha):
        raise ValueError(f"alpha must be in [0, 1] (0 = forward KL, 0.5 = JSD, 1 = reverse KL), got {alpha}")
    return alpha


def _upcast(x: torch.Tensor) -> torch.Tensor:
    # bf16/fp16 logits lose too much precision in log-softmax differences; float64 inputs stay float64.
    return x if x.dtype == torch.float64 else x.float()


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis from log-probabilities; 0 * log 0 counts as 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def topk_logprobs(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int, add_tail: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Restrict both distributions to the student's top-`k` ids.

    Returns log-probabilities of shape ``[..., k + 1]`` (with the tail bucket) or ``[..., k]`` (renormalised).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)}")
    vocab = student_logits.shape[-1]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= vocab:
        raise ValueError(f"top-k must be an integer in [1, vocab={vocab}], got {k!r}")
    s_logp = F.log_softmax(_upcast(student_logits), dim=-1)
    t_logp = F.log_softmax(_upcast(teacher_logits), dim=-1)
    idx = s_logp.detach().topk(k, dim=-1).indices
    s_top, t_top = s_logp.gather(-1, idx), t_logp.gather(-1, idx)
    if not add_tail:
        return F.log_softmax(s_top, dim=-1), F.log_softmax(t_top, dim=-1)

    def with_tail(top: torch.Tensor) -> torch.Tensor:
        mass = torch.logsumexp(top, dim=-1, keepdim=True).clamp(max=_MAX_TOPK_LOGMASS)
        return torch.cat([top, torch.log(-torch.expm1(mass))], dim=-1)

    return with_tail(s_top), with_tail(t_top)


def divergence_from_logprobs(student_logp: torch.Tensor, teacher_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-position divergence by `alpha` between two normalised log-distributions (last axis)."""
    alpha = _check_alpha(alpha)
    if alpha == 0.0:
        return _kl(teacher_logp, student_logp)
    if alpha == 1.0:
        return _kl(student_logp, teacher_logp)
    mix = torch.logsumexp(
        torch.stack([student_logp + math.log(1.0 - alpha), teacher_logp + math.log(alpha)]), dim=0
    )
    return (1.0 - alpha) * _kl(student_logp, mix) + alpha * _kl(teacher_logp, mix)


def token_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    alpha: float = 0.5,
    topk: int | None = None,
    add_tail: bool = True,
) -> torch.Tensor:
    """Divergence per token between student logits and teacher logits (``[..., vocab]`` -> ``[...]``).

    The teacher is detached here so no gradient can flow into it, whatever the caller passes.
    """
    teacher_logits = teacher_logits.detach()
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)}")
    if topk is None:
        s = F.log_softmax(_upcast(student_logits), dim=-1)
        t = F.log_softmax(_upcast(teacher_logits), dim=-1)
    else:
        s, t = topk_logprobs(student_logits, teacher_logits, topk, add_tail)
    return divergence_from_logprobs(s, t, alpha)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (token-mean); 0 when the mask is empty, with the graph kept."""
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def group_advantages(rewards, group_size: int, normalize_std: bool = True, eps: float = 1e-6,
                     on_single: str = "raise") -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean, divided by the group's std (unbiased) when asked.

    `rewards` is flat, ordered group by group (``[g0_r0 .. g0_r{G-1}, g1_r0 ..]``). With ``group_size == 1`` every
    advantage is exactly zero, so GRPO cannot learn: ``on_single`` = "raise" (default) raises, "warn" warns and
    returns zeros, "zero" returns zeros silently (for a caller that reports the missing signal itself).
    """
    r = torch.as_tensor(rewards, dtype=torch.float64).flatten()
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    if on_single not in ("raise", "warn", "zero"):
        raise ValueError(f"on_single must be 'raise', 'warn' or 'zero', got {on_single!r}")
    if group_size == 1:
        msg = "GRPO with group size 1: every group-relative advantage is 0, so the policy gradient is 0"
        if on_single == "raise":
            raise ValueError(msg + " (use G >= 2, or allow it explicitly)")
        if on_single == "warn":
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return torch.zeros_like(r)
    g = r.view(-1, group_size)
    adv = g - g.mean(dim=1, keepdim=True)
    if normalize_std:
        adv = adv / (g.std(dim=1, keepdim=True) + eps)
    return adv.flatten()


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref) from the sampled token's log-probs: ``exp(d) - d - 1``, d = ref - logp."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def pg_token_losses(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-token clipped surrogate loss ``-min(r * A, clip(r, 1 - clip_low, 1 + clip_high) * A)``, r = pi / pi_old.

    `is_weight` (detached) multiplies each token's surrogate: the truncated importance weight that corrects for a
    sampler whose log-probs differ from the trainer's. With `ref_logp` and ``kl_coef > 0`` the k3 estimate of the
    KL to the reference is added per token. Returns ``(loss per token, clipped mask, k3 per token or None)``: the
    mask marks tokens whose clipped branch is the minimum, which get no gradient from the surrogate.
    """
    if not (logp.shape == old_logp.shape == advantages.shape):
        raise ValueError("logp, old_logp and advantages must share one shape")
    if clip_low < 0 or clip_high < 0:
        raise ValueError("clip ranges must be >= 0")
    ratio = torch.exp((logp - old_logp.detach()).clamp(-20.0, 20.0))
    adv = advantages.detach()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if is_weight is not None:
        per_token = per_token * is_weight.detach()
    kl = None
    if ref_logp is not None and kl_coef > 0:
        kl = k3_kl(logp, ref_logp.detach())
        per_token = per_token + kl_coef * kl
    # Clipped = the clipped branch is the minimum, the tokens whose gradient the clip removes (PPO's clipfrac).
    return per_token, clipped < unclipped, kl


def clipped_pg_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """Clipped token-level policy-gradient loss (PPO/GRPO surrogate, :func:`pg_token_losses`), token-mean over `mask`.

    All tensors are per sampled token and aligned (`advantages` already broadcast to tokens).
    """
    if logp.shape != mask.shape:
        raise ValueError("logp, old_logp, advantages and mask must share one shape")
    per_token, clipped, kl = pg_token_losses(logp, old_logp, advantages, clip_low, clip_high, ref_logp, kl_coef,
                                             is_weight)
    stats = {"clip_frac": float(masked_mean(clipped.float(), mask).detach())}
    if kl is not None:
        stats["kl_ref"] = float(masked_mean(kl, mask).detach())
    return masked_mean(per_token, mask), stats
