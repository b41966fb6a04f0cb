"""Compute accounting: each episode is charged its share of every batch, the run's wall time is real time (not a
sum of overlapping episode spans), and compare names each column's unit and aggregation."""

import time

import pytest

from hero_gym.benchmarks.compare import compare
from hero_gym.evaluate import run_eval

import harness_toyenv
from harness_fixtures import toy_env  # noqa: F401  (registers the toy env per module)
from harness_toyenv import N_TASKS, TOY_ID

DELAY = 0.02  # seconds per request of slow_even_solver


def test_generation_share_timestamps_and_real_wall_time(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_DELAY", str(DELAY))
    runs = []
    for name in ("a", "b"):
        t0 = time.time()
        store = run_eval(TOY_ID, "harness_toyenv:slow_even_solver", tmp_path / name, k=2, batch_size=2 * N_TASKS,
                         progress=False)
        runs.append((store, time.time() - t0))
    (store, elapsed) = runs[0]
    recs = store.load()
    requests = sum(r.turns for r in recs)  # one request per turn: even tasks 1, odd tasks 3
    assert requests == N_TASKS * (1 + 3)
    for r in recs:
        # a batch of n requests takes n * DELAY (the policy answers them in turn): each is charged DELAY per turn
        assert r.gen_time_s >= 0.95 * DELAY * r.turns
        assert r.wall_time_s >= r.gen_time_s + r.env_time_s * 0.99
        assert r.started_at <= r.ended_at and r.ended_at - r.started_at == pytest.approx(r.wall_time_s, abs=0.05)

    table = compare([tmp_path / "a", tmp_path / "b"], n_boot=50).set_index("run")
    row = table.loc["a"]
    # the shares add up to the time spent generating, which is nearly all of this run
    assert row["gen_time_s_total"] == pytest.approx(sum(r.gen_time_s for r in recs))
    assert row["gen_time_s_total"] <= row["wall_time_s_run"] + 1e-6 <= elapsed + 1e-6
    # every episode waits for the whole batch: summing their spans would count the run's time several times over
    assert sum(r.wall_time_s for r in recs) > 3 * row["wall_time_s_run"]
    assert row["wall_time_s_mean"] == pytest.approx(sum(r.wall_time_s for r in recs) / len(recs))
    for col in ("tokens_out_total", "tokens_out_mean", "tokens_in_total", "env_steps_total", "gen_time_s_total",
                "env_time_s_total", "wall_time_s_run"):
        assert col in table.columns
    assert "wall_time_s" not in table.columns and "tokens_out" not in table.columns  # no unit-less sums
