"""Losses against float64 references written independently here with plain loops / numpy."""

import math

import numpy as np
import pytest
import torch

from hero_gym.agents import losses as L


def np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def ref_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def ref_div(p_s, p_t, alpha):
    if alpha == 0:
        return ref_kl(p_t, p_s)
    if alpha == 1:
        return ref_kl(p_s, p_t)
    m = [(1 - alpha) * a + alpha * b for a, b in zip(p_s, p_t)]
    return (1 - alpha) * ref_kl(p_s, m) + alpha * ref_kl(p_t, m)


def ref_topk(s_logits, t_logits, k, tail):
    p_s, p_t = np_softmax(s_logits), np_softmax(t_logits)
    order = sorted(range(len(p_s)), key=lambda i: -p_s[i])[:k]
    s = [p_s[i] for i in order]
    t = [p_t[i] for i in order]
    if tail:
        return s + [1 - sum(s)], t + [1 - sum(t)]
    return [x / sum(s) for x in s], [x / sum(t) for x in t]


@pytest.fixture
def logits():
    g = np.random.default_rng(0)
    return g.normal(size=(5, 11)) * 2, g.normal(size=(5, 11)) * 2


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_full_vocab_divergence_matches_reference(logits, alpha):
    s, t = logits
    got = L.token_divergence(torch.tensor(s), torch.tensor(t), alpha=alpha).double().numpy()
    want = [ref_div(np_softmax(s[i]), np_softmax(t[i]), alpha) for i in range(len(s))]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_alpha_limits_tend_to_forward_and_reverse_kl(logits):
    s, t = (torch.tensor(x) for x in logits)
    fwd = L.token_divergence(s, t, alpha=0.0)
    rev = L.token_divergence(s, t, alpha=1.0)
    eps = 1e-6
    torch.testing.assert_close(L.token_divergence(s, t, alpha=eps) / eps, fwd, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(L.token_divergence(s, t, alpha=1 - eps) / eps, rev, rtol=1e-4, atol=1e-5)
    # Forward and reverse KL genuinely differ here, so the two limits are not the same number by accident.
    assert not torch.allclose(fwd, rev)


@pytest.mark.parametrize("tail", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_topk_matches_reference(logits, tail, alpha):
    s, t = logits
    got = L.token_divergence(torch.tensor(s), torch.tensor(t), alpha=alpha, topk=4, add_tail=tail).double().numpy()
    want = [ref_div(*ref_topk(s[i], t[i], 4, tail), alpha) for i in range(len(s))]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_topk_shapes_and_full_k_equals_full_vocab(logits):
    s, t = (torch.tensor(x) for x in logits)
    ls, lt = L.topk_logprobs(s, t, 3, add_tail=True)
    assert ls.shape == (5, 4)
    torch.testing.assert_close(ls.exp().sum(-1), torch.ones(5, dtype=ls.dtype), rtol=1e-5, atol=1e-6)
    # K = vocab, renormalised, is the full divergence.
    torch.testing.assert_close(
        L.token_divergence(s, t, 0.5, topk=11, add_tail=False), L.token_divergence(s, t, 0.5), rtol=1e-5, atol=1e-6
    )


def test_divergence_is_zero_for_identical_and_teacher_gets_no_grad(logits):
    s = torch.tensor(logits[0], requires_grad=True)
    t = torch.tensor(logits[1], requires_grad=True)
    assert torch.allclose(L.token_divergence(s, s.detach().clone(), 0.5), torch.zeros(5, dtype=s.dtype), atol=1e-7)
    L.token_divergence(s, t, 0.5).sum().backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_alpha_raises(logits, bad):
    with pytest.raises(ValueError, match="alpha"):
        L.token_divergence(torch.tensor(logits[0]), torch.tensor(logits[1]), alpha=bad)


def test_bad_topk_and_shapes_raise(logits):
    s, t = (torch.tensor(x) for x in logits)
    with pytest.raises(ValueError, match="top-k"):
        L.token_divergence(s, t, topk=0)
    with pytest.raises(ValueError, match="top-k"):
        L.token_divergence(s, t, topk=12)
    with pytest.raises(ValueError, match="shape"):
        L.token_divergence(s, t[:, :5])


def test_masked_mean_and_zero_grad_outside_mask():
    v = torch.arange(6, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([0, 1, 1, 0, 1, 0])
    out = L.masked_mean(v, m)
    assert out.item() == pytest.approx((1 + 2 + 4) / 3)
    out.backward()
    assert v.grad.tolist() == [0, 1 / 3, 1 / 3, 0, 1 / 3, 0]
    assert L.masked_mean(v, torch.zeros(6)).item() == 0.0


def ref_advantages(rewards, g, norm):
    out = []
    for i in range(0, len(rewards), g):
        grp = rewards[i:i + g]
        mu = sum(grp) / g
        sd = math.sqrt(sum((x - mu) ** 2 for x in grp) / (g - 1))
        out += [(x - mu) / (sd + 1e-6) if norm else x - mu for x in grp]
    return out


@pytest.mark.parametrize("norm", [True, False])
def test_group_advantages_match_reference(norm):
    r = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.2, 0.9, 1.0]
    got = L.group_advantages(r, 4, normalize_std=norm).tolist()
    np.testing.assert_allclose(got, ref_advantages(r, 4, norm), rtol=1e-9, atol=1e-12)
    # An all-equal group has zero advantage (no contrast), not a division blow-up.
    assert got[4:8] == [0.0] * 4


def test_group_size_one_raises_or_warns_zero():
    with pytest.raises(ValueError, match="group size 1"):
        L.group_advantages([1.0, 0.0], 1)
    with pytest.warns(RuntimeWarning, match="group size 1"):
        adv = L.group_advantages([1.0, 0.0], 1, on_single="warn")
    assert adv.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="groups of 3"):
        L.group_advantages([1.0, 0.0], 3)


def test_clipped_pg_loss_matches_reference():
    g = np.random.default_rng(1)
    logp = g.normal(size=8) * 0.3 - 1
    old = logp + g.normal(size=8) * 0.4
    ref = logp + g.normal(size=8) * 0.2
    adv = g.normal(size=8)
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1])
    eps_lo, eps_hi, beta = 0.2, 0.28, 0.05
    want_terms = []
    for i in range(8):
        if not mask[i]:
            continue
        r = math.exp(logp[i] - old[i])
        surr = min(r * adv[i], min(max(r, 1 - eps_lo), 1 + eps_hi) * adv[i])
        d = ref[i] - logp[i]
        want_terms.append(-surr + beta * (math.exp(d) - d - 1))
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    lp = t(logp).requires_grad_()
    loss, stats = L.clipped_pg_loss(lp, t(old), t(adv), t(mask), eps_lo, eps_hi, ref_logp=t(ref), kl_coef=beta)
    assert loss.item() == pytest.approx(sum(want_terms) / len(want_terms), rel=1e-9)
    loss.backward()
    assert (lp.grad[torch.tensor(mask) == 0] == 0).all()
    assert "kl_ref" in stats and 0 <= stats["clip_frac"] <= 1


def test_pg_token_losses_with_is_weights_and_clip_mask_match_reference():
    g = np.random.default_rng(2)
    logp = g.normal(size=12) * 0.3 - 1
    old = logp + g.normal(size=12) * 0.5  # ratios well outside [0.8, 1.28] on both sides
    adv = g.normal(size=12)
    w = np.exp(g.normal(size=12))
    eps_lo, eps_hi = 0.2, 0.28
    want, want_clipped = [], []
    for i in range(12):
        r = math.exp(logp[i] - old[i])
        l_unclipped, l_clipped = -r * adv[i], -min(max(r, 1 - eps_lo), 1 + eps_hi) * adv[i]
        want.append(max(l_unclipped, l_clipped) * w[i])
        want_clipped.append(l_clipped > l_unclipped)  # the clipped branch decides the loss
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    lp = t(logp).requires_grad_()
    per_token, clipped, kl = L.pg_token_losses(lp, t(old), t(adv), eps_lo, eps_hi, is_weight=t(w))
    np.testing.assert_allclose(per_token.detach().numpy(), want, rtol=1e-12)
    assert clipped.tolist() == want_clipped and 0 < sum(want_clipped) < 12 and kl is None
    per_token.sum().backward()
    assert torch.all(lp.grad[clipped] == 0) and torch.all(lp.grad[~clipped] != 0)


def test_pg_gradient_pushes_up_positive_advantage_tokens():
    logits = torch.zeros(2, 3, requires_grad=True)
    logp = torch.log_softmax(logits, -1)[torch.arange(2), torch.tensor([0, 1])]
    loss, _ = L.clipped_pg_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2))
    loss.backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] > 0  # descent raises token 0 of row 0, lowers token 1 of row 1


def test_k3_is_nonnegative_and_zero_at_equality():
    a = torch.linspace(-3, 0, 7)
    assert torch.all(L.k3_kl(a, a) == 0)
    assert torch.all(L.k3_kl(a, a.flip(0)) >= 0)
