"""The distillation methods: the optional RL term (rl_coef), G = 1, and the teacher's scoring temperature."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from hero_gym.agents.losses import token_divergence
from hero_gym.agents.scoring import action_logits

from agents_fixtures import METHOD_CONFIGS, build

DISTILL = ["sdpo", "full-demo", "hero"]


def grads(model):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("method", DISTILL)
def test_rl_coef_adds_the_grpo_term_to_distillation(tmp_path, method):
    cfg = {"teacher": "frozen", "micro_batch_size": 4}
    plain = build(tmp_path / "a", method, cfg_kw=cfg)
    assert plain.pg is None and plain.method_config.rl_coef == 0.0  # off by default
    groups = plain.collect(0, 0)
    assert any(len({t.reward for t in g}) > 1 for g in groups), "no reward contrast in the toy batch"
    s_plain = plain.batch_loss(groups, 1.0)
    assert "rl_loss" not in s_plain
    grpo = build(tmp_path / "g", "grpo", cfg_kw=cfg)
    s_grpo = grpo.batch_loss(groups, 1.0)
    mixed = build(tmp_path / "m", method, cfg_kw=cfg, mc=dataclasses.replace(METHOD_CONFIGS[method](), rl_coef=0.5))
    s_mixed = mixed.batch_loss(groups, 1.0)
    assert s_mixed["distill_loss"] == pytest.approx(s_plain["loss"], rel=1e-5)
    assert s_mixed["rl_loss"] == pytest.approx(s_grpo["loss"], rel=1e-5, abs=1e-9) and s_grpo["loss"] != 0
    assert s_mixed["loss"] == pytest.approx(s_plain["loss"] + 0.5 * s_grpo["loss"], rel=1e-5)
    assert s_mixed["zero_adv_groups"] == s_grpo["zero_adv_groups"] and s_mixed["rl_tokens"] == s_grpo["loss_tokens"]
    for a, g, m in zip(grads(plain.model), grads(grpo.model), grads(mixed.model)):
        torch.testing.assert_close(m, a + 0.5 * g, rtol=1e-4, atol=1e-7)


def oracle_kw(method):
    """Full-Demo at G = 1 has no siblings: its demonstration comes from an oracle (here: the trajectory, marked won)."""
    if method != "full-demo":
        return {}, {}
    return {"demo_source": "oracle"}, {"oracle_fn": lambda traj: dataclasses.replace(traj, reward=1.0, success=True)}


@pytest.mark.parametrize("method", DISTILL)
def test_distillation_methods_train_at_group_size_one(tmp_path, method):
    mkw, kw = oracle_kw(method)
    mc = dataclasses.replace(METHOD_CONFIGS[method](), **mkw)
    tr = build(tmp_path, method, cfg_kw={"group_size": 1, "export_model": False}, mc=mc, **kw)
    before = [p.detach().clone() for p in tr.model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no signal" warning: distillation has a signal at G = 1
        history = tr.train()
    assert all(h["episodes"] == 2 and h["loss_tokens"] > 0 and h["loss"] > 0 and h["grad_norm"] > 0 for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    # Asking for the RL term at G = 1 is allowed but said once: it has no signal there.
    with pytest.warns(RuntimeWarning, match="group_size=1"):
        rl = build(tmp_path / "rl", method, cfg_kw={"group_size": 1, "export_model": False},
                   mc=dataclasses.replace(mc, rl_coef=1.0), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = rl.train()[0]
    assert rec["zero_adv_groups"] == rec["groups"] == 2 and rec["rl_loss"] == 0.0 and rec["distill_loss"] > 0


@pytest.mark.parametrize("method", DISTILL)
def test_teacher_and_student_logits_use_the_sampling_temperature(tmp_path, method):
    temp = 0.5
    tr = build(tmp_path, method, cfg_kw={"teacher": "frozen", "temperature": temp, "student_pass": "turn"})
    groups = tr.collect(0, 0)
    items = tr.build_items(groups)[:3]
    got = tr.teacher_logits(items)
    raw, _, _ = action_logits(tr.teacher_model, [i.teacher_ids for i in items], [i.action_ids for i in items],
                              tr.pad_id, 1.0)
    torch.testing.assert_close(got, raw / temp)
    assert not torch.allclose(got, raw)
    # The loss is the divergence between the tempered student and the tempered teacher.
    mc = tr.method_config
    s_raw, _, mask = action_logits(tr.model, [i.student_ids for i in items], [i.action_ids for i in items], tr.pad_id)
    want = (token_divergence(s_raw / temp, raw / temp, mc.alpha, mc.topk, mc.add_tail) * mask).sum() / mask.sum()
    tr.build_items = lambda groups: items  # score exactly these items
    assert tr.distill_loss(groups, 1.0)["loss"] == pytest.approx(float(want.detach()), rel=1e-4)
