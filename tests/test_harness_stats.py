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


# ----- exact binomial intervals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 20, 37])
def test_wilson_and_clopper_pearson_match_scipy_binomtest(n):
    from scipy.stats import binomtest

    for x in range(n + 1):
        ref = binomtest(x, n)
        assert stats.wilson_ci(x, n) == pytest.approx(tuple(ref.proportion_ci(0.95, method="wilson")), abs=1e-12)
        assert stats.clopper_pearson_ci(x, n) == pytest.approx(tuple(ref.proportion_ci(0.95, method="exact")),
                                                               abs=1e-12)


def test_exact_intervals_hand_values_and_edges():
    # 0 of 20: Clopper-Pearson's upper bound is 1 - 0.025**(1/20); Wilson's is z^2 / (n + z^2).
    assert stats.clopper_pearson_ci(0, 20) == pytest.approx((0.0, 1 - 0.025 ** (1 / 20)))
    z2 = 1.959963984540054 ** 2
    assert stats.wilson_ci(0, 20) == pytest.approx((0.0, z2 / (20 + z2)))
    assert all(np.isnan(stats.wilson_ci(0, 0))) and all(np.isnan(stats.clopper_pearson_ci(0, 0)))
    lo, hi = stats.clopper_pearson_ci(2.5, 10)  # fractional successes (mean of per-task rates) are allowed
    assert stats.clopper_pearson_ci(2, 10)[0] < lo < hi < stats.clopper_pearson_ci(3, 10)[1]
    for bad in ((5, 4), (-1, 4), (1, -2)):
        with pytest.raises(ValueError):
            stats.wilson_ci(*bad)
        with pytest.raises(ValueError):
            stats.clopper_pearson_ci(*bad)


def test_clopper_pearson_covers_at_least_nominally_for_small_n():
    rng = np.random.default_rng(2024)
    for p in (0.05, 0.3):
        xs = rng.binomial(20, p, size=400)
        covered = np.mean([lo <= p <= hi for lo, hi in (stats.clopper_pearson_ci(int(x), 20) for x in xs)])
        assert covered >= 0.94


def test_twenty_failures_are_not_a_zero_width_interval():
    df = _frame({t: [False] for t in range(20)})
    row = stats.summarize(df, n_boot=200).iloc[0]
    assert (row["mean@1_lo"], row["mean@1_hi"]) == (0.0, 0.0)  # the bootstrap cannot see any spread
    assert row["mean@1_wilson_hi"] == pytest.approx(0.1611, abs=1e-4)
    assert row["mean@1_cp_hi"] == pytest.approx(0.1684, abs=1e-4)
    text = stats.format_summary(stats.summarize(df, n_boot=200))
    assert "[0.000, 0.168]" in text and "[0.000, 0.161]" in text and "zero width" in text


# ----- errored episodes are no results ----------------------------------------------------------------------------
def test_errored_episodes_are_left_out_of_metrics_and_counted():
    df = _frame({0: [True, True], 1: [True, False], 2: [False, False]})
    df.loc[(df["task"] == 1) & (df["attempt"] == 1), "error"] = "generation failed: server down"
    df.loc[df["task"] == 2, "error"] = "env reset failed: missing data"
    row = stats.summarize(df, k=1, n_boot=100).iloc[0]
    assert row["errors"] == 3 and row["episodes"] == 3 and row["tasks"] == 2
    assert row["mean@1"] == pytest.approx(1.0)  # task 0 (2/2) and task 1 (1/1); the errors are not failures
    text = stats.format_summary(stats.summarize(df, k=1, n_boot=100))
    assert "3 episode(s) ended in error" in text


def test_a_configuration_that_only_errored_still_gets_a_row():
    df = _frame({0: [False], 1: [False]}).assign(error="boom")
    row = stats.summarize(df, n_boot=50).iloc[0]
    assert row["errors"] == 2 and row["episodes"] == 0 and np.isnan(row["mean@k"])
    assert "-" in stats.format_summary(stats.summarize(df, n_boot=50))


# ----- compute accounting -----------------------------------------------------------------------------------------
def test_compute_columns_name_unit_and_aggregation_and_run_wall_time_is_a_union():
    df = _frame({0: [True], 1: [False], 2: [True]}).assign(
        tokens_in=[100, 200, 300], gen_time_s=[1.0, 1.0, 2.0], env_time_s=[0.1, 0.2, 0.3],
        started_at=[1000.0, 1001.0, 1010.0], ended_at=[1004.0, 1003.0, 1012.0])
    c = stats.compute_columns(df)
    assert c["tokens_out_total"] == 30 and c["tokens_out_mean"] == pytest.approx(10)
    assert c["tokens_in_total"] == 600 and c["gen_time_s_total"] == pytest.approx(4.0)
    assert c["env_time_s_total"] == pytest.approx(0.6)
    # spans [1000, 1004] and [1001, 1003] overlap (one batch), [1010, 1012] comes after a gap: 4 + 2 seconds
    assert c["wall_time_s_run"] == pytest.approx(6.0)
    assert c["wall_time_s_mean"] == pytest.approx(0.1)  # the per-episode span, kept apart from the run's time
    old = _frame({0: [True]})  # records written before the timestamps existed
    assert np.isnan(stats.compute_columns(old)["wall_time_s_run"])
