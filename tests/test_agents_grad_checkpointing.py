"""Gradient checkpointing (TrainConfig.grad_checkpointing) on CPU: same loss and gradients, fewer saved activations."""

from __future__ import annotations

import torch

from agents_fixtures import build


def _saved_bytes(model, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one training forward (outside checkpointed regions)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, use_cache=False).logits.sum()
    return total


def _checkpointing(model) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_grad_checkpointing_gives_the_same_loss_and_gradients_and_saves_less(tmp_path):
    plain = build(tmp_path / "a", "sdpo", cfg_kw={"teacher": "frozen"})
    ckpt = build(tmp_path / "b", "sdpo", cfg_kw={"teacher": "frozen", "grad_checkpointing": True})
    assert _checkpointing(ckpt.model) and not _checkpointing(plain.model)
    groups = plain.collect(0, 0)
    results = []
    for tr in (plain, ckpt):
        tr.optimizer.zero_grad(set_to_none=True)
        stats = tr.batch_loss(groups, 1.0)
        results.append((stats, {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}))
    (s_plain, g_plain), (s_ckpt, g_ckpt) = results
    assert s_plain["loss_tokens"] > 0
    assert abs(s_plain["loss"] - s_ckpt["loss"]) <= 1e-6 * max(1.0, abs(s_plain["loss"]))
    assert g_plain.keys() == g_ckpt.keys() and g_plain
    for n in g_plain:
        torch.testing.assert_close(g_ckpt[n], g_plain[n], rtol=1e-4, atol=1e-7, msg=n)
    ids = torch.tensor([groups[0][0].token_ids()[:64]])
    assert _saved_bytes(ckpt.model, ids) < 0.5 * _saved_bytes(plain.model, ids)
