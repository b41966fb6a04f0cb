"""`hero-gym train` / `hero-gym sweep`: argument errors, the sweep plan, and a real tiny run read by the harness."""

import json

import pytest

from hero_gym.agents.cli import (_Parser, _add_train_options, build_configs, parse_tasks, run_summary, sweep_main,
                                 train_main)

BASE = ["--env", "hero_gym/WebShop-v0", "--model", "tiny", "--tasks", "0-2", "--group-size", "2", "--tasks-per-step",
        "1", "--steps", "1", "--max-new-tokens", "8"]


def test_parse_tasks():
    assert parse_tasks("all") is None
    assert parse_tasks("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("x", "3-1", "1-"):
        with pytest.raises(Exception, match="bad task list"):
            parse_tasks(bad)


@pytest.mark.parametrize("argv,match", [
    (["--method", "ppo"], "invalid choice"),
    (["--method", "hero", "--tasks", "0-99999"], "task indices"),
    (["--method", "hero", "--set", "nonsense=1"], "no such field"),
    (["--method", "hero", "--set", "alpha=3"], "alpha"),
    (["--method", "grpo", "--group-size", "1", "--set", "allow_single_rollout=false"], "group_size=1"),
    (["--method", "grpo", "--set", "ppo_epochs=0"], "ppo_epochs"),
    (["--method", "grpo", "--set", "loss_agg=sum"], "loss_agg"),
    (["--method", "grpo", "--temperature", "0.7", "--set", "old_logprobs=rollout"], "temperature 1"),
    (["--method", "hero", "--set", "rl_coef=-1"], "rl_coef"),
    (["--method", "hero", "--set", "rl_coef=1", "--set", "tis_cap=0"], "tis_cap"),
    (["--method", "sdpo", "--split", "dev"], "no split"),
])
def test_train_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, match):
    assert train_main(BASE + argv + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_sweep_dry_run_lists_every_run_and_checks_configs_first(tmp_path, capsys):
    argv = BASE + ["--methods", "hero,grpo", "--budgets", "3,6", "--seeds", "0,1", "--out", str(tmp_path), "--dry-run"]
    assert sweep_main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8 and lines[0].split()[:3] == ["hero", "3", "0"]
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    assert sweep_main(BASE + ["--methods", "hero,nope", "--budgets", "3", "--out", str(tmp_path)]) == 2
    # G = 1 is a first-class sweep setting (GRPO runs as a no-signal control); bad method settings stop the sweep
    # before its first run.
    assert sweep_main(BASE + ["--methods", "hero,grpo", "--budgets", "3", "--group-size", "1", "--out", str(tmp_path),
                              "--dry-run"]) == 0
    assert sweep_main(BASE + ["--methods", "hero,grpo", "--budgets", "3", "--set", "ppo_epochs=0",
                              "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_set_reaches_the_methods_that_have_the_field(tmp_path):
    p = _Parser(prog="t")
    _add_train_options(p, sweep=True)
    args = p.parse_args(BASE + ["--set", "rl_coef=0.5", "--set", "ppo_epochs=3", "--set", "loss_agg=sequence-mean",
                                "--out", str(tmp_path)])
    _, hero = build_configs(args, "hero", 3, 0, str(tmp_path / "h"))
    _, grpo = build_configs(args, "grpo", 3, 0, str(tmp_path / "g"))
    assert hero.rl_coef == 0.5 and hero.loss_agg == "sequence-mean" and not hasattr(hero, "ppo_epochs")
    assert grpo.ppo_epochs == 3 and grpo.loss_agg == "sequence-mean" and not hasattr(grpo, "rl_coef")


@pytest.mark.slow
def test_sweep_runs_train_and_the_harness_reads_the_results(tmp_path, capsys):
    from hero_gym.cli import main

    out = tmp_path / "sweep"
    argv = BASE + ["--methods", "sdpo,grpo", "--budgets", "2,3", "--eval-split", "test", "--eval-tasks", "0-1",
                   "--set", "topk=10", "--out", str(out)]
    assert sweep_main(argv) == 0
    printed = capsys.readouterr().out
    finals = sorted(out.glob("*/eval/final"))
    assert len(finals) == 4 and "hero-gym plot budget-sweep" in printed
    assert printed.count("steps with a non-zero gradient:") == 4
    from hero_gym.benchmarks.learning_curves import log_table  # the names the trainers log reach the curves' table
    assert {"invalid_action_rate", "selected_frac", "grad_norm"} <= set(log_table(out / "sdpo-B2-s0").columns)
    assert {"invalid_action_rate", "zero_adv_groups", "grad_norm"} <= set(log_table(out / "grpo-B2-s0").columns)
    cfg = json.loads((out / "sdpo-B2-s0" / "config.json").read_text())
    assert cfg["method_config"]["topk"] == 10 and cfg["train"]["turn_budget"] == 2
    assert main(["compare", *map(str, finals)]) == 0
    assert main(["plot", "budget-sweep", *map(str, finals), "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").stat().st_size > 0
    # Running it again resumes: nothing left to train, evaluation already stored.
    assert sweep_main(argv) == 0
    assert all(len((f / "episodes.jsonl").read_text().splitlines()) == 2 for f in finals)


def test_run_summary_says_when_no_step_had_a_gradient():
    still = [{"loss": 0.0, "grad_norm": 0.0, "success_rate": 0.0}] * 8
    text = run_summary("grpo B=4 seed=1", 0, 8, 450, still, "runs/x")
    assert "steps with a non-zero gradient: 0 of 8" in text
    assert "WARNING: no step had a gradient, so this run learned nothing: its weights are the starting model's" in text
    resumed = run_summary("grpo B=4 seed=1", 3, 8, 450, still[:5], "runs/x")
    assert "0 of 5" in resumed and "steps 4-8 learned nothing: the weights are its step-3 checkpoint's" in resumed
    one = [{"loss": 0.01, "grad_norm": 0.49}] + still[1:]
    assert "1 of 8" in (text := run_summary("grpo B=4 seed=2", 0, 8, 527, one, "runs/y")) and "WARNING" not in text
    # A method that logs no gradient norm is not accused of learning nothing.
    assert "WARNING" not in run_summary("sft", 0, 2, 9, [{"loss": 1.2}] * 2, "runs/z")
    assert "WARNING" not in run_summary("grpo", 8, 8, 0, [], "runs/z")  # nothing left to train
