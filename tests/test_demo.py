"""`hero-gym demo` (what `make demo` runs): three policies on the same WebShop episodes, then a summary with
intervals, the compare table, a plot, a trajectory page and a reading that says when a difference is noise."""

from __future__ import annotations

import re

from hero_gym.cli import main
from hero_gym.benchmarks.stats import wilson_ci
from hero_gym.demo import DemoConfig, reading
from hero_gym.records import load_frame


def test_demo_writes_everything_a_new_user_looks_at(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--policy", "tiny", "--tasks", "0-1", "--k", "2", "--max-turns", "6", "--max-new-tokens", "4",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    runs = {p.name: load_frame([p]) for p in (out / "tiny", out / "oracle", out / "random")}
    assert all(len(df) == 4 for df in runs.values())
    assert len({tuple(sorted(zip(df["task"], df["attempt"], df["seed"]))) for df in runs.values()}) == 1  # same episodes
    oracle = runs["oracle"]
    wins = int(oracle["success"].sum())
    assert re.search(rf"\| oracle \| 4 \| {wins}/4 = {wins / 4:.2f} \[", printed)  # the table reads the records
    assert "Baseline: random" in (out / "compare.md").read_text()
    assert (out / "policies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "trajectory.md").read_text()
    assert page.startswith("# tiny on hero_gym/WebShop-v0 (test), task 0, attempt 0") and "## Turn 1" in page
    assert "Reading: on 2 WebShop goals x 2 attempts (4 episodes" in printed
    assert (out / "view.html").read_text().lstrip().lower().startswith("<!doctype html")
    # a rerun resumes from the stored episodes and prints the same numbers
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert again.split("Wrote")[0] == printed.split("Wrote")[0]


def test_demo_without_data_stops_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HERO_GYM_DATA", str(tmp_path / "empty"))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "benchmark data missing" in err[0] and "hero-gym data download webshop-1k" in err[0]
    assert not (tmp_path / "demo").exists()


def _row(policy, reward, lo, hi, success=0.0):
    return {"policy": policy, "episodes": 12, "tasks": 6, "successes": int(success * 12), "success": success,
            "success_lo": wilson_ci(success * 6, 6)[0], "success_hi": wilson_ci(success * 6, 6)[1], "reward": reward,
            "reward_lo": lo, "reward_hi": hi, "bought": 0.5, "turns": 4.0, "tokens_out": 10.0}


def test_reading_says_when_a_difference_is_inside_the_noise():
    cfg = DemoConfig()
    oracle = _row("oracle", 0.95, 0.9, 1.0, 0.9)
    close = reading([_row("smollm2", 0.05, 0.0, 0.12), oracle, _row("random", 0.02, 0.0, 0.06)], cfg)
    assert "not distinguishable" in close
    apart = reading([_row("smollm2", 0.5, 0.3, 0.7), oracle, _row("random", 0.02, 0.0, 0.06)], cfg)
    assert "do not overlap" in apart and "not distinguishable" not in apart
    assert "up to 39%" in close  # 0 successes in 6 goals: the Wilson upper bound is 0.390
