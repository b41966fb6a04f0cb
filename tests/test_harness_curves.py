"""Learning curves from stored training runs (intervals, paired difference to the start point) and the slimmed
copy of run records for results/."""

from __future__ import annotations

import json

import pytest
from scipy.stats import binomtest

from hero_gym.benchmarks import collect_runs, learning_curves as lc
from hero_gym.records import load_frame
from harness_fixtures import make_run

TRAJ = {"turns": [{"index": 0, "action": "search[x]" * 50, "invalid": False, "reward": 0.0, "action_token_ids": [1] * 9,
                   "observation": "page " * 100, "info": {}},
                  {"index": 1, "action": "nonsense", "invalid": True, "reward": 0.0, "action_token_ids": [2],
                   "observation": "page", "info": {"invalid_reason": "no action found"}}],
        "messages": [{"role": "user", "content": "x" * 1000}], "prompt_token_ids": list(range(500)),
        "reward_info": {"r_type": 1.0, "r_att": 0.5, "r_option": 0.0, "r_price": True}}


def training_run(root, name, before: bool, after: bool, tasks=10):
    d = root / name
    make_run(d / "eval" / "step_00002", {t: [before] * 2 for t in range(tasks)}, method="m", train_budget=4,
             trajectory=TRAJ)
    make_run(d / "eval" / "final", {t: [after] * 2 for t in range(tasks)}, method="m", train_budget=4, trajectory=TRAJ)
    (d / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "method": "m", "loss": 1.0 / s, "grad_norm": 0.5,
                                                           "success_rate": 0.0, "step_s": 10.0 * s, "peak_rss_mb": 100 * s})
                                               + "\n" for s in (1, 2, 3, 4)))
    return d


def test_curve_rows_intervals_and_paired_difference_to_the_start(tmp_path):
    start = make_run(tmp_path / "start", {t: [t < 2, False] for t in range(10)}, method="sft", train_budget=0).dir
    up = training_run(tmp_path, "up", before=False, after=True)
    flat = training_run(tmp_path, "flat", before=False, after=False)
    table = lc.curve_table([up, flat], start, n_boot=500).set_index(["run", "step"])
    assert table.loc[("start", 0), "success"] == pytest.approx(0.1)
    assert table.loc[("start", 0), "episodes"] == 20 and table.loc[("start", 0), "successes"] == 2
    # the exact intervals count tasks, not episodes (2 attempts of a task are not independent): 1 of 10, not 2 of 20
    ci = binomtest(1, 10).proportion_ci(method="exact")
    assert (table.loc[("start", 0), "cp_lo"], table.loc[("start", 0), "cp_hi"]) == pytest.approx((ci.low, ci.high))
    assert table.loc[("start", 0), "wilson_lo"] > ci.low  # Wilson is narrower than Clopper-Pearson here
    # the final point of `up` is at the last logged step and clearly above the start; `flat` is not
    assert table.loc[("up", 4), "success"] == 1.0 and table.loc[("up", 4), "diff_lo"] > 0
    assert table.loc[("flat", 4), "diff_lo"] < 0 <= table.loc[("flat", 4), "diff_hi"] + 1e-12
    assert table.loc[("up", 2), "success"] == 0.0
    assert table.loc[("up", 4), "invalid_rate"] == pytest.approx(0.5)
    md = lc.to_markdown(table.reset_index())
    assert "| up | 4 |" in md and "cp_lo" in md


def test_reward_and_its_paired_difference_move_without_success(tmp_path):
    # WebShop's partial credit: no episode succeeds, but the trained run scores 0.2 more on every task but one.
    start = make_run(tmp_path / "start", {t: [False] * 4 for t in range(20)}, method="sft", train_budget=0,
                     reward=lambda t, a: 0.3 + 0.02 * t + 0.01 * a).dir
    d = tmp_path / "up"
    make_run(d / "eval" / "final", {t: [False] * 4 for t in range(20)}, method="m", train_budget=4,
             reward=lambda t, a: 0.3 + 0.02 * t + 0.01 * a + (0.2 if t else -0.1))
    (d / "train_log.jsonl").write_text(json.dumps({"step": 8, "method": "m"}) + "\n")
    table = lc.curve_table([d], start, n_boot=500).set_index(["run", "step"])
    s, f = table.loc[("start", 0)], table.loc[("up", 8)]
    assert s["reward"] == pytest.approx(0.3 + 0.02 * 9.5 + 0.015)
    assert s["reward_lo"] < s["reward"] < s["reward_hi"]
    assert f["reward_diff"] == pytest.approx((19 * 0.2 - 0.1) / 20)
    assert 0 < f["reward_diff_lo"] < f["reward_diff"] < f["reward_diff_hi"] <= 0.2 + 1e-12
    assert f["success"] == 0 and f["diff"] == 0  # success did not move
    md = lc.to_markdown(table.reset_index())
    assert "reward_diff_lo" in md


def test_seeds_pool_into_one_row_per_configuration(tmp_path):
    # Three seeds of one configuration raise reward by 0.0, 0.1 and 0.2 on every task; seed 2 also solves tasks 0-3
    # every time. A run of another configuration and a run without a final evaluation must not join the group.
    n = 20
    start = make_run(tmp_path / "start", {t: [False] * 2 for t in range(n)}, reward=lambda t, a: 0.3).dir
    for s, up in enumerate((0.0, 0.1, 0.2)):
        make_run(tmp_path / f"m-B8-s{s}" / "eval" / "final", {t: [s == 2 and t < 4] * 2 for t in range(n)},
                 method="m", train_budget=8, reward=lambda t, a, up=up: 0.3 + up)
    make_run(tmp_path / "m-B4-s0" / "eval" / "final", {t: [False] * 2 for t in range(n)}, method="m", train_budget=4,
             reward=lambda t, a: 0.0)
    (tmp_path / "m-B8-s3" / "eval").mkdir(parents=True)  # not evaluated yet
    runs = [tmp_path / r for r in ("m-B8-s0", "m-B8-s1", "m-B8-s2", "m-B8-s3", "m-B4-s0")]
    table = lc.pooled_table(runs, start, n_boot=500).set_index("config")
    assert sorted(table.index) == ["m-B4", "m-B8"]
    row = table.loc["m-B8"]
    assert row["seeds"] == 3 and row["tasks"] == n
    assert row["reward_diff"] == pytest.approx(0.1)
    assert row["reward_diff_per_seed"] == "+0.000 +0.100 +0.200"
    assert row["diff"] == pytest.approx(4 / 3 / n) and row["success"] == pytest.approx(4 / 3 / n)
    assert row["diff_per_seed"] == "+0.000 +0.000 +0.200"
    assert row["wins_tasks"] == 4 and row["losses_tasks"] == 0 and row["sign_test_p"] == pytest.approx(0.125)
    assert row["diff_lo"] >= 0 and row["diff_hi"] > row["diff"]
    assert table.loc["m-B4", "reward_diff"] == pytest.approx(-0.3) and table.loc["m-B4", "seeds"] == 1
    # the CLI appends the pooled table, and --pool without a start point is a clear error
    assert lc.main([*map(str, runs[:3]), "--start", str(start), "--pool", "--md", str(tmp_path / "p.md")]) == 0
    assert "pooled over seeds" in (tmp_path / "p.md").read_text() and "| m-B8 " in (tmp_path / "p.md").read_text()
    assert lc.main([*map(str, runs[:3]), "--pool"]) == 2
    # runs of one name from two sweeps are not seeds of one configuration
    for s, lr in ((0, 1e-5), (1, 1e-5), (2, 1e-4)):
        (tmp_path / f"m-B8-s{s}" / "config.json").write_text(json.dumps({"train": {"seed": s, "lr": lr,
                                                                                     "out_dir": f"o/{s}"}}))
    with pytest.raises(ValueError, match=r"differ in \['train.lr'\]"):
        lc.pooled_table(runs, start)
    (tmp_path / "m-B8-s2" / "config.json").write_text(json.dumps({"train": {"seed": 2, "lr": 1e-5, "out_dir": "o/2"}}))
    assert lc.pooled_table(runs, start, n_boot=100).set_index("config").loc["m-B8", "seeds"] == 3


def test_cli_writes_table_log_and_plot(tmp_path, capsys):
    start = make_run(tmp_path / "start", {t: [False] for t in range(4)}).dir
    run = training_run(tmp_path, "r", before=False, after=True, tasks=4)
    assert lc.main([str(run), "--start", str(start), "--md", str(tmp_path / "c.md"), "--png", str(tmp_path / "c.png")]) == 0
    text = (tmp_path / "c.md").read_text()
    assert "Training log of r" in text and "grad_norm" in text
    assert (tmp_path / "c.png").stat().st_size > 10_000
    costs = lc.cost_table([run]).iloc[0]
    assert costs["steps"] == 4 and costs["step_s"] == 30.0 and costs["peak_rss_mb"] == 400  # step 1 left out


def test_collect_keeps_the_flat_fields_and_drops_tokens_and_weights(tmp_path):
    run = training_run(tmp_path / "runs", "hero-B4-s0", before=False, after=True, tasks=3)
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "trainer_state.pt").write_bytes(b"x" * 1000)
    (run / "config.json").write_text("{}")
    collect_runs.collect(run, tmp_path / "res")
    out = tmp_path / "res" / "hero-B4-s0"
    assert not (out / "checkpoint").exists() and (out / "config.json").is_file() and (out / "train_log.jsonl").is_file()
    for store in ("eval/final", "eval/step_00002"):
        a, b = load_frame([run / store]), load_frame([out / store])
        assert a.drop(columns="run").equals(b.drop(columns="run"))
    rec = json.loads((out / "eval" / "final" / "episodes.jsonl").read_text().splitlines()[0])
    turns = rec["trajectory"]["turns"]
    assert [t["invalid"] for t in turns] == [False, True] and turns[1]["invalid_reason"] == "no action found"
    assert len(turns[0]["action"]) == 200 and "action_token_ids" not in turns[0] and "observation" not in turns[0]
    assert "messages" not in rec["trajectory"] and "prompt_token_ids" not in rec["trajectory"]
    assert rec["trajectory"]["reward_info"] == TRAJ["reward_info"]  # why the purchase scored what it did
    assert lc.invalid_rate(out / "eval" / "final") == pytest.approx(0.5)
