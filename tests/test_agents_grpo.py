"""GRPO as a PPO-style update: the old policy, epochs and mini-batches, clipping, truncated IS, loss aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from hero_gym.agents import policy_gradient as PG
from hero_gym.agents.context import student_context
from hero_gym.agents.grpo import GRPOConfig
from hero_gym.agents.losses import group_advantages
from hero_gym.agents.scoring import action_logits, token_logprobs

from agents_fixtures import build


def record_pg_calls(monkeypatch):
    """Record every call of the per-token surrogate: (logp with its grad kept, old, advantages, clipped mask)."""
    calls = []
    real = PG.pg_token_losses

    def spy(logp, old, adv, *args, **kw):
        logp.retain_grad()
        out = real(logp, old, adv, *args, **kw)
        calls.append({"logp": logp, "old": old.detach().clone(), "adv": adv.detach().clone(), "clipped": out[1]})
        return out

    monkeypatch.setattr(PG, "pg_token_losses", spy)
    return calls


def contrast_groups(tr):
    groups = tr.collect(0, 0)
    assert all(len({t.reward for t in g}) > 1 for g in groups), "toy batch lacks reward contrast; change the seed"
    return groups


def test_second_epoch_ratios_differ_from_one_and_clipped_tokens_get_no_gradient(tmp_path, monkeypatch):
    mc = GRPOConfig(ppo_epochs=2, clip_low=0.05, clip_high=0.05)
    tr = build(tmp_path, "grpo", mc=mc, cfg_kw={"lr": 3e-2, "max_grad_norm": 0.0})
    groups = contrast_groups(tr)
    calls = record_pg_calls(monkeypatch)
    stats = tr.update([groups])
    assert stats["updates"] == 2
    epochs = [[c for c in calls[:len(calls) // 2]], [c for c in calls[len(calls) // 2:]]]
    ratio = [torch.cat([(c["logp"].detach() - c["old"]).exp() for c in e]) for e in epochs]
    # The first epoch is on-policy (old = the sampler's log-probs of these very weights) ...
    torch.testing.assert_close(ratio[0], torch.ones_like(ratio[0]), rtol=0, atol=1e-4)
    # ... the second is not: the old policy stayed the one that sampled the batch.
    assert (ratio[1] - 1).abs().max() > 0.05
    clipped = torch.cat([c["clipped"] for c in epochs[1]])
    grad = torch.cat([c["logp"].grad for c in epochs[1]])
    adv = torch.cat([c["adv"] for c in epochs[1]])
    assert clipped.any() and (~clipped & (adv != 0)).any()
    assert torch.all(grad[clipped] == 0)  # clipped tokens get no gradient
    assert torch.all(grad[~clipped & (adv != 0)] != 0)
    assert stats["clip_frac"] > 0 and stats["policy_kl"] > 0


def test_old_policy_is_the_behaviour_log_probs_recorded_at_rollout(tmp_path, monkeypatch):
    tr = build(tmp_path, "grpo")
    groups = contrast_groups(tr)
    trajs = [t for g in groups for t in g]
    # The sampler recorded the trainer's own distribution: recomputing gives the same numbers.
    t0 = trajs[0]
    lg, tg, _ = action_logits(tr.model, [student_context(t0, 0)], [t0.turns[0].action_token_ids], tr.pad_id)
    torch.testing.assert_close(token_logprobs(lg, tg)[0].double(), torch.tensor(t0.turns[0].action_logprobs,
                                                                              dtype=torch.float64), rtol=0, atol=1e-4)
    for t in trajs:  # pretend the sampler saw these tokens as less likely than the trainer does
        for turn in t.turns:
            turn.action_logprobs = [x - 0.3 for x in turn.action_logprobs]
    calls = record_pg_calls(monkeypatch)
    tr.batch_loss(groups, 1.0)
    ratio = torch.cat([(c["logp"].detach() - c["old"]).exp() for c in calls])
    torch.testing.assert_close(ratio, torch.full_like(ratio, math.exp(0.3)), rtol=1e-4, atol=0)
    # recompute: pi_old is the trainer's own forward, so the first update is exactly on-policy
    rc = build(tmp_path / "rc", "grpo", mc=GRPOConfig(old_logprobs="recompute"))
    calls.clear()
    rc.batch_loss(groups, 1.0)
    ratio = torch.cat([(c["logp"].detach() - c["old"]).exp() for c in calls])
    assert torch.equal(ratio, torch.ones_like(ratio))


def test_mini_batches_split_each_epoch_and_keep_the_sampling_policy_as_old(tmp_path, monkeypatch):
    mc = GRPOConfig(ppo_epochs=2, mini_batch_size=2, old_logprobs="recompute")
    tr = build(tmp_path, "grpo", mc=mc, cfg_kw={"lr": 3e-2})
    groups = contrast_groups(tr)
    calls = record_pg_calls(monkeypatch)
    stats = tr.update([groups])
    assert stats["updates"] == 4  # 4 trajectories / 2 per mini-batch x 2 epochs
    n_tokens = sum(len(t.action_token_ids) for g in groups for tr_ in g for t in tr_.turns)
    assert stats["loss_tokens"] == n_tokens
    # Every update after the first sees moved weights but the same (pre-update) old log-probs.
    firsts = torch.cat([(c["logp"].detach() - c["old"]).exp() for c in calls[:1]])
    torch.testing.assert_close(firsts, torch.ones_like(firsts))
    later = torch.cat([(c["logp"].detach() - c["old"]).exp() for c in calls[1:]])
    assert (later - 1).abs().max() > 1e-3


@pytest.mark.parametrize("agg", ["token-mean", "sequence-mean"])
def test_loss_aggregation_divides_by_the_promised_counts(tmp_path, agg):
    tr = build(tmp_path, "grpo", mc=GRPOConfig(loss_agg=agg, old_logprobs="recompute"), cfg_kw={"micro_batch_size": 2})
    groups = contrast_groups(tr)
    for t in groups[1]:
        t.reward = 0.25  # a group without contrast: its tokens count in the token-mean but have no gradient
    trajs = [t for g in groups for t in g]
    adv = group_advantages([t.reward for t in trajs], 2).tolist()
    assert adv[2:] == [0.0, 0.0] and all(a != 0 for a in adv[:2])
    n = [sum(len(turn.action_token_ids) for turn in t.turns) for t in trajs]
    assert len(set(n)) > 1  # trajectories of different lengths tell the two aggregations apart
    stats = tr.batch_loss(groups, 1.0)
    got = [p.grad.clone() for p in tr.model.parameters()]
    # Independent reference: per-turn forwards, summed token log-probs per trajectory, weighted by hand.
    tr.model.zero_grad()
    ref = 0.0
    for k, t in enumerate(trajs):
        lp = sum((token_logprobs(*action_logits(tr.model, [student_context(t, i)], [turn.action_token_ids],
                                                tr.pad_id)[:2]).double()).sum() for i, turn in enumerate(t.turns))
        ref = ref - adv[k] * lp / (sum(n) if agg == "token-mean" else n[k] * len(trajs))
    ref.backward()
    want_loss = -sum(a * m for a, m in zip(adv, n)) / sum(n) if agg == "token-mean" else -sum(adv) / len(trajs)
    assert stats["loss"] == pytest.approx(want_loss, abs=1e-6)
    assert stats["loss_tokens"] == sum(n) and stats["active_tokens"] == n[0] + n[1]
    for g, p in zip(got, tr.model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-3, atol=1e-7)


def test_success_bonus_lifts_successful_episodes_only(tmp_path):
    tr = build(tmp_path, "grpo", mc=GRPOConfig(success_bonus=2.0, normalize_std=False))
    groups = contrast_groups(tr)
    (a, b), (c, d) = groups[0], groups[1]
    a.reward, a.success, b.reward, b.success = 1.0, True, 0.5, False  # a full success beside a partial purchase
    c.reward, c.success, d.reward, d.success = 0.5, False, 0.5, True  # equal env rewards, only one a success
    adv, zero = tr.pg.advantages(groups)
    assert adv.tolist() == pytest.approx([1.25, -1.25, -1.0, 1.0])  # (3.0 vs 0.5) and (0.5 vs 2.5), halved
    assert zero == 0  # the bonus gave the second group its contrast
    d.success = False
    assert tr.pg.advantages(groups)[1] == 1
    plain = build(tmp_path / "plain", "grpo", mc=GRPOConfig(normalize_std=False))
    assert plain.pg.advantages(groups)[0].tolist() == pytest.approx([0.25, -0.25, 0.0, 0.0])


def test_truncated_importance_weights_correct_for_the_sampler(tmp_path):
    cap = 1.5
    tr = build(tmp_path, "grpo", mc=GRPOConfig(tis_cap=cap, loss_agg="token-mean"))
    assert tr.pg.mode == "recompute"  # auto: TIS compares the trainer's pi_old with the sampler's
    groups = contrast_groups(tr)
    trajs = [t for g in groups for t in g]
    shift = {0: 1.0, 1: -1.0, 2: -0.2}  # sampler log-prob = trainer's - shift; weight = exp(shift), capped
    old = []
    for t in trajs:
        for i, turn in enumerate(t.turns):
            lg, tg, _ = action_logits(tr.model, [student_context(t, i)], [turn.action_token_ids], tr.pad_id)
            lp = token_logprobs(lg, tg)[0].detach().double()
            old.append(lp)
            turn.action_logprobs = (lp - shift[i]).tolist()
    adv = group_advantages([t.reward for t in trajs], 2).tolist()
    n = sum(len(turn.action_token_ids) for t in trajs for turn in t.turns)
    want = -sum(adv[k] * min(math.exp(shift[i]), cap) * len(turn.action_token_ids)
                for k, t in enumerate(trajs) for i, turn in enumerate(t.turns)) / n
    stats = tr.batch_loss(groups, 1.0)
    assert stats["loss"] == pytest.approx(want, rel=1e-4)
    turn0 = sum(len(t.turns[0].action_token_ids) for t in trajs)
    assert stats["tis_truncated_frac"] == pytest.approx(turn0 / n)


@pytest.mark.parametrize("bad,match", [
    ({"ppo_epochs": 0}, "ppo_epochs"), ({"mini_batch_size": 0}, "mini_batch_size"), ({"loss_agg": "sum"}, "loss_agg"),
    ({"old_logprobs": "new"}, "old_logprobs"), ({"tis_cap": -1.0}, "tis_cap"),
    ({"old_logprobs": "rollout", "tis_cap": 2.0}, "recompute"), ({"clip_low": -0.1}, "clip"),
    ({"success_bonus": -1.0}, "success_bonus"), ({"success_bonus": float("nan")}, "success_bonus"),
])
def test_bad_grpo_settings_raise(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        build(tmp_path, "grpo", mc=GRPOConfig(**bad))
    with pytest.raises(ValueError, match="temperature 1"):
        build(tmp_path, "grpo", mc=GRPOConfig(old_logprobs="rollout"), cfg_kw={"temperature": 0.7})
    assert build(tmp_path, "grpo", cfg_kw={"temperature": 0.7}).pg.mode == "recompute"


def test_ppo_epochs_and_mini_batches_train_end_to_end_and_log(tmp_path):
    tr = build(tmp_path, "grpo", mc=GRPOConfig(ppo_epochs=2, mini_batch_size=2), cfg_kw={"export_model": False})
    history = tr.train()
    assert all(h["updates"] == 4 and h["grad_norm_max"] >= h["grad_norm"] >= 0 for h in history)
    for key in ("zero_adv_groups", "clip_frac", "policy_kl", "invalid_action_rate", "gen_tokens"):
        assert key in history[0], key
