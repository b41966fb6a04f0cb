"""`hero-gym` commands on fixture runs, and the one-line exit-2 errors for bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from hero_gym.cli import main

from harness_fixtures import make_run

T, F = True, False


def _err(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize("argv, needle", [
    (["eval", "--env", "nope/Env-v0", "--policy", "oracle", "--out", "x"], "unknown environment"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--split", "bogus", "--policy", "oracle", "--out", "x"], "no split"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--tasks", "3-x", "--policy", "oracle", "--out", "x"], "bad --tasks"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--tasks", "9-2", "--policy", "oracle", "--out", "x"], "before the start"),
    (["eval", "--env", "hero_gym/TauAirline-v0", "--tasks", "0-50", "--policy", "oracle", "--out", "x"], "out of range"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--k", "0", "--policy", "oracle", "--out", "x"], "positive integer"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--seed", "-3", "--policy", "oracle", "--out", "x"], "non-negative"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--temperature", "nan", "--policy", "oracle", "--out", "x"], "finite"),
    (["eval", "--env", "hero_gym/WebShop-v0", "--user", "scripted", "--policy", "oracle", "--out", "x"], "tau"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--user", "robot", "--policy", "oracle", "--out", "x"], "bad --user"),
    (["eval", "--env", "hero_gym/TauRetail-v0", "--out", "x"], "--policy"),
    (["frobnicate"], "invalid choice"),
    (["plot"], "budget-sweep, heatmap or credit"),
    (["summary", "/nonexistent/run"], "does not exist"),
    (["--plugin", "no_such_module_xyz", "envs"], "cannot import plugin"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    code, err = _err(capsys, argv)
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_entry_point_error_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "hero_gym.cli", "eval", "--env", "nope", "--policy", "x", "--out", "y"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown environment 'nope'")
    assert "Traceback" not in proc.stderr


def test_envs_lists_registry(capsys):
    assert main(["envs", "--markdown"]) == 0
    out = capsys.readouterr().out
    for env_id in ("hero_gym/TauRetail-v0", "hero_gym/Tau2Retail-v0", "hero_gym/WebShop-v0"):
        assert env_id in out
    assert "test 115" in out  # task counts per split come from the registry


def test_summary_compare_plot_export_commands(tmp_path, capsys):
    a = make_run(tmp_path / "base", {0: [T, F], 1: [F, F], 2: [T, T]}, policy="base").dir
    b = make_run(tmp_path / "new", {0: [T, T], 1: [T, F], 2: [T, T]}, policy="new").dir
    assert main(["summary", str(a), str(b), "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "mean@2" in out and "pass^2" in out
    s = pd.read_csv(tmp_path / "s.csv").set_index("policy")
    assert s.loc["base", "mean@2"] == pytest.approx(0.5) and s.loc["new", "mean@2"] == pytest.approx(5 / 6)

    assert main(["compare", str(a), str(b), "--csv", str(tmp_path / "c.csv"), "--md", str(tmp_path / "c.md")]) == 0
    assert "Baseline: base" in capsys.readouterr().out
    c = pd.read_csv(tmp_path / "c.csv").set_index("run")
    assert (c.loc["new", "wins_tasks"], c.loc["new", "losses_tasks"]) == (2, 0)

    assert main(["plot", "heatmap", str(a), str(b), "--out", str(tmp_path / "h.png")]) == 0
    assert (tmp_path / "h.png").stat().st_size > 5_000
    code, err = _err(capsys, ["plot", "budget-sweep", str(a), "--budget", "train", "--out", str(tmp_path / "b.png")])
    assert code == 2 and "train_budget" in err
    code, err = _err(capsys, ["plot", "heatmap", str(a), "--out", str(tmp_path / "h.jpg")])
    assert code == 2 and ".png, .pdf or .svg" in err

    assert main(["export", str(a), "--out", str(tmp_path / "a.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "a.parquet")) == 6
    code, err = _err(capsys, ["export", str(a), "--out", str(tmp_path / "a.txt")])
    assert code == 2 and ".jsonl or .parquet" in err


def test_compare_of_different_envs_is_a_usage_error(tmp_path, capsys):
    a = make_run(tmp_path / "a", {0: [T]}).dir
    b = make_run(tmp_path / "b", {0: [T]}, env="toy/Other-v0").dir
    code, err = _err(capsys, ["compare", str(a), str(b)])
    assert code == 2 and "different env" in err


def test_dispatch_passes_arguments_through(monkeypatch, capsys):
    import types

    seen = {}
    fake = types.ModuleType("hero_gym.download")
    fake.data_main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "hero_gym.download", fake)
    assert main(["data", "verify", "tau-v1", "--dest", "/tmp/d"]) == 0
    assert seen["argv"] == ["verify", "tau-v1", "--dest", "/tmp/d"]
