"""Metrics of the harness against hand-computed values and brute-force enumeration."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from hero_gym.benchmarks import stats
from hero_gym.benchmarks.compare import mcnemar_exact


def _brute(n, c, k, need_all):
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    hits = [all(outcomes[i] for i in s) if need_all else any(outcomes[i] for i in s) for s in subsets]
    return sum(hits) / len(subsets)


@pytest.mark.parametrize("n", range(1, 7))
def test_pass_at_k_and_pass_hat_k_match_subset_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert stats.pass_at_k(n, c, k) == pytest.approx(_brute(n, c, k, need_all=False))
            assert stats.pass_hat_k(n, c, k) == pytest.approx(_brute(n, c, k, need_all=True))


def test_pass_metrics_hand_values():
    assert stats.pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert stats.pass_hat_k(4, 3, 2) == pytest.approx(0.5)  # C(3,2)/C(4,2) = 3/6
    assert stats.pass_at_k(5, 0, 3) == 0.0
    assert stats.pass_hat_k(5, 5, 5) == 1.0


@pytest.mark.parametrize("args", [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4), (3.0, 1, 1), (True, 1, 1)])
def test_pass_metrics_reject_bad_counts(args):
    with pytest.raises((ValueError, TypeError)):
        stats.pass_at_k(*args)
    with pytest.raises((ValueError, TypeError)):
        stats.pass_hat_k(*args)


def _frame(outcomes, **cols):
    rows = [dict(env="e", split="test", method=None, policy="p", train_budget=None, max_turns=5, task=t, attempt=a,
                 success=s, reward=float(s), turns=2 if s else 5, termination_reason="success" if s else "turn_budget",
                 error=None, env_steps=2, tokens_out=10, wall_time_s=0.1, seed=a, **cols)
            for t, outs in outcomes.items() for a, s in enumerate(outs)]
    return pd.DataFrame(rows)


def test_summary_hand_computed():
    df = _frame({0: [True, False, True, True], 1: [False] * 4, 2: [True, True, False, False]})
    s = stats.summarize(df, n_boot=200)
    assert len(s) == 1
    row = s.iloc[0]
    assert row["k"] == 4 and row["tasks"] == 3 and row["episodes"] == 12
    assert row["mean@4"] == pytest.approx((0.75 + 0 + 0.5) / 3)
    assert row["pass@4"] == pytest.approx(2 / 3)  # tasks 0 and 2 have a success among their 4 attempts
    assert row["pass^4"] == pytest.approx(0.0)
    assert row["turns"] == pytest.approx((5 * 2 + 7 * 5) / 12)
    assert row["turns_success"] == pytest.approx(2.0)
    assert row["budget_hit"] == pytest.approx(7 / 12)
    assert row["mean@4_lo"] <= row["mean@4"] <= row["mean@4_hi"]
    # asking for k=2 rescales pass@k/pass^k: task0 c=3 -> pass@2=1, pass^2=3/6; task2 c=2 -> 5/6, 1/6
    s2 = stats.summarize(df, k=2, n_boot=200).iloc[0]
    assert s2["pass@2"] == pytest.approx((1 + 0 + 5 / 6) / 3)
    assert s2["pass^2"] == pytest.approx((0.5 + 0 + 1 / 6) / 3)


def test_summary_groups_by_configuration_and_rejects_too_large_k():
    a = _frame({0: [True, True], 1: [False, False]})
    b = _frame({0: [False, False], 1: [False, True]}).assign(policy="q")
    s = stats.summarize(pd.concat([a, b]), n_boot=100).set_index("policy")
    assert s.loc["p", "mean@2"] == pytest.approx(0.5) and s.loc["q", "mean@2"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="fewer attempts"):
        stats.summarize(a, k=3)
    with pytest.raises(ValueError):
        stats.summarize(a.iloc[0:0])
    assert "mean@2" in stats.format_summary(s.reset_index())


def test_bootstrap_ci_coverage_on_bernoulli_tasks():
    # 300 replications of 80 tasks with success prob 0.3: the 95% interval should cover 0.3 about 95% of the time.
    rng = np.random.default_rng(123)
    p, covered, reps = 0.3, 0, 300
    for r in range(reps):
        x = (rng.random(80) < p).astype(float)
        lo, hi = stats.bootstrap_ci(x, n_boot=400, seed=r)
        covered += lo <= p <= hi
    assert 0.90 <= covered / reps <= 0.99


def test_bootstrap_ci_is_seeded_and_handles_edges():
    x = [0, 1, 1, 0, 1]
    assert stats.bootstrap_ci(x, seed=3) == stats.bootstrap_ci(x, seed=3)
    assert stats.bootstrap_ci([0.4], seed=0) == (0.4, 0.4)
    assert all(np.isnan(stats.bootstrap_ci([])))
    with pytest.raises(ValueError):
        stats.bootstrap_ci(x, level=1.5)


def test_mcnemar_exact_hand_values():
    # b=1, c=6: n=7, P(X<=1) = (1 + 7)/128 = 0.0625, two-sided 0.125
    assert mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)
