"""Batched teacher-forced scoring: logits of a model at the positions of each item's action tokens.

Rows are left-padded so every action ends at the last position; the model is then asked only for the last
``max action length + 1`` positions of logits (``logits_to_keep``), which keeps the vocabulary-sized tensor small
even for long conversations.
"""

from __future__ import annotations

import torch


def action_logits(
    model,
    contexts: list[list[int]],
    actions: list[list[int]],
    pad_id: int,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run `model` on ``context + action`` rows; return ``(logits [B, L, V], targets [B, L], mask [B, L])``.

    Row i's action is right-aligned in the L = max action length slots; ``mask`` marks real action tokens. Logits
    are divided by `temperature` (the sampling temperature, as the rollouts drew from that distribution).
    """
    if len(contexts) != len(actions) or not contexts:
        raise ValueError(f"need equally many (>0) contexts and actions, got {len(contexts)} and {len(actions)}")
    if any(len(c) == 0 for c in contexts):
        raise ValueError("every context needs at least one token (the first action token is predicted from it)")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for scoring, got {temperature}")
    device = next(model.parameters()).device
    rows = [list(c) + list(a) for c, a in zip(contexts, actions)]
    width = max(len(r) for r in rows)
    max_act = max(len(a) for a in actions)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), max_act), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), max_act), dtype=torch.float32)
    for i, (r, a) in enumerate(zip(rows, actions)):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        attn[i, width - len(r):] = 1
        if a:
            targets[i, max_act - len(a):] = torch.tensor(a, dtype=torch.long)
            mask[i, max_act - len(a):] = 1.0
    # Left padding: positions count real tokens only, so a padded row sees the same positions as an unpadded one.
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids.to(device),
        attention_mask=attn.to(device),
        position_ids=pos.to(device),
        logits_to_keep=max_act + 1,
        use_cache=False,
    )
    logits = out.logits[:, -(max_act + 1):-1, :]
    if temperature != 1.0:
        logits = logits / temperature
    return logits, targets.to(device), mask.to(device)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each target token under `logits` (float32 or better)."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def chunks(items: list, size: int):
    """Consecutive slices of `items` of at most `size` elements."""
    if size < 1:
        raise ValueError(f"micro-batch size must be >= 1, got {size}")
    for i in range(0, len(items), size):
        yield items[i:i + size]


def trajectory_action_logits(model, ids: list[int], spans: list[tuple[int, int]], temperature: float = 1.0) -> list[torch.Tensor]:
    """One forward over a whole trajectory's ids; the logits predicting each span's tokens, one ``[L, V]`` per span.

    A causal model gives every turn exactly the logits it would get from its own prefix, so this replaces one
    forward per turn (quadratic in the number of turns) when the trajectory fits the context cap. Only the needed
    positions are projected on the vocabulary.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for scoring, got {temperature}")
    if not spans:
        return []
    if any(s < 1 or e > len(ids) or e < s for s, e in spans):
        raise ValueError(f"action spans {spans} do not fit a sequence of {len(ids)} tokens (each needs a context)")
    device = next(model.parameters()).device
    keep = torch.tensor([p - 1 for s, e in spans for p in range(s, e)], dtype=torch.long, device=device)
    x = torch.tensor([ids], dtype=torch.long, device=device)
    logits = model(input_ids=x, logits_to_keep=keep, use_cache=False).logits[0]
    if temperature != 1.0:
        logits = logits / temperature
    return list(torch.split(logits, [e - s for s, e in spans], dim=0))
