"""Run config files (`--config FILE`): the shipped recipes parse, validate and go through the planner; explicit
flags beat the file; a typo names the nearest key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hero_gym.agents.cli import adapt_run_config, build_configs, sweep_parser, with_config
from hero_gym.agents.plan import PlanConfig, plan, plan_from_run_config
from hero_gym.config_file import ConfigFileError, read_config

RECIPES = Path(__file__).resolve().parents[1] / "agents" / "recipes"
RUN_FILES = sorted(p for p in RECIPES.glob("*.toml") if not p.name.endswith(".eval.toml"))
EVAL_FILES = sorted(RECIPES.glob("*.eval.toml"))


def _sweep_args(argv):
    p = sweep_parser()
    return p.parse_args(with_config(p, argv, sweep=True))


def test_the_recipe_ships_every_table1_row_and_sweep_point():
    names = {p.name for p in RECIPES.glob("*.toml")}
    for env in ("retail", "webshop"):
        for m in ("hero", "sdpo", "full-demo", "grpo"):
            assert f"table1-{env}-{m}.toml" in names
    assert {"table1-base-retail.eval.toml", "table1-base-airline.eval.toml", "table1-base-webshop.eval.toml"} <= names
    assert len([n for n in names if n.startswith("budget-sweep-")]) >= 3


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.name)
def test_shipped_run_config_validates_and_plans(path):
    data = read_config(path)
    args = _sweep_args(["--config", str(path)])
    methods = args.methods.split(",")
    assert len(args.seeds) >= 3, "each recipe runs at least 3 seeds"
    for m in methods:
        for b in args.budgets:
            cfg, mc = build_configs(args, m, b, args.seeds[0], "/tmp/unused")  # runs TrainConfig.validate()
            assert cfg.model == data["model"] and cfg.turn_budget == b
    if path.name.startswith("budget-sweep"):
        assert args.group_size == 1  # the budget claim is about G = 1
    text = path.read_text()
    for must in ("Checkpoint choice", "Evaluation schedule", "Seeds"):
        assert must in text, f"{path.name} does not write down its {must.lower()}"
    methods_p, kw = plan_from_run_config(data)
    assert methods_p == methods
    for m in methods_p:
        p = plan(PlanConfig(**{**kw, "method": m}))
        assert p.fits() or p.problems()  # accepted, or refused with its reasons
        assert p.config.train_seq_len == cfg.max_context_tokens
        assert p.config.max_model_len == cfg.vllm_max_model_len


@pytest.mark.parametrize("path", EVAL_FILES, ids=lambda p: p.name)
def test_shipped_eval_config_parses(path):
    from hero_gym.cli import _add_eval_options, _Parser
    from hero_gym.config_file import expand_config

    p = _Parser(prog="hero-gym eval")
    _add_eval_options(p)
    argv, _ = expand_config(["--config", str(path), "--seed", "2"], p)
    args = p.parse_args(argv)
    assert args.k == 4 and args.seed == 2 and args.policy.endswith("Qwen3-4B-Instruct-2507")


def _write(tmp_path, text, name="run.toml"):
    f = tmp_path / name
    f.write_text(text)
    return f


BASE = """
method = "grpo"
env = "hero_gym/WebShop-v0"
model = "tiny"
seeds = [0, 1, 2]
budgets = [4]
group_size = 4
lr = 0.001
tis_cap = 2.0
eval_tasks = [0, 1]
eval_split = "test"
out = "runs/x"
"""


def test_explicit_flags_beat_the_file(tmp_path):
    f = _write(tmp_path, BASE)
    args = _sweep_args(["--config", str(f), "--lr", "0.5", "--group-size", "2", "--set", "tis_cap=3",
                        "--seeds", "7"])
    cfg, mc = build_configs(args, "grpo", 4, args.seeds[0], "o")
    assert (cfg.lr, cfg.group_size, mc.tis_cap, args.seeds) == (0.5, 2, 3.0, [7])
    # and without the flags the file's values are used
    args = _sweep_args(["--config", str(f)])
    cfg, mc = build_configs(args, "grpo", 4, 0, "o")
    assert (cfg.lr, cfg.group_size, mc.tis_cap, cfg.eval_tasks, args.out) == (0.001, 4, 2.0, [0, 1], "runs/x")


def test_yaml_and_json_files_read_like_toml(tmp_path):
    pytest.importorskip("yaml")
    y = _write(tmp_path, "method: grpo\nenv: hero_gym/WebShop-v0\nbudgets: [4]\nlr: 0.25\nout: o\n", "r.yaml")
    j = _write(tmp_path, json.dumps({"method": "grpo", "env": "hero_gym/WebShop-v0", "budgets": [4], "lr": 0.25,
                                     "out": "o"}), "r.json")
    for f in (y, j):
        assert _sweep_args(["--config", str(f)]).lr == 0.25


@pytest.mark.parametrize("typo, near", [("grup_size", "group_size"), ("teacher_update_rat", "teacher_update_rate"),
                                        ("reflecter", "reflector"), ("tis_capp", "tis_cap")])
def test_a_typo_key_names_the_nearest_valid_one(tmp_path, typo, near, capsys):
    from hero_gym.agents.cli import sweep_main

    f = _write(tmp_path, BASE + f"{typo} = 1\n")
    assert sweep_main(["--config", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"unknown key {typo!r}" in err and f"did you mean {near!r}" in err


def test_a_typo_in_the_plan_table_is_refused_too(tmp_path):
    with pytest.raises(ConfigFileError, match="did you mean 'gpu_mem_gb'"):
        plan_from_run_config(read_config(_write(tmp_path, BASE + "[plan]\ngpu_mem_gbb = 80\n")))


def test_train_takes_one_run_from_a_sweep_file(tmp_path):
    data = read_config(_write(tmp_path, BASE))
    with pytest.raises(ConfigFileError, match="pick it with --seed"):
        adapt_run_config(data, [], sweep=False)
    one = adapt_run_config(data, ["--seed", "1"], sweep=False)
    assert one["method"] == "grpo" and one["turn_budget"] == 4 and "seed" not in one


def test_train_main_runs_from_a_file(tmp_path, monkeypatch):
    from hero_gym.agents import cli

    seen = {}
    monkeypatch.setattr(cli, "_run_one", lambda args, m, b, s, out: seen.update(m=m, b=b, s=s, out=out, lr=args.lr))
    f = _write(tmp_path, BASE)
    assert cli.train_main(["--config", str(f), "--seed", "2", "--lr", "0.1"]) == 0
    assert seen == {"m": "grpo", "b": 4, "s": 2, "out": "runs/x", "lr": 0.1}


def test_plan_cli_reads_the_run_config(tmp_path, capsys):
    from hero_gym.cli import main

    f = RECIPES / "table1-retail-hero.toml"
    code = main(["plan", "--config", str(f)])
    out = capsys.readouterr().out
    assert "max_model_len 16896" in out and "6 training GPU(s) + 2 vLLM GPU(s)" in out
    assert code == (0 if "\nfits" in out else 1)
    # an explicit flag overrides the file's [plan] table: one GPU cannot hold the full fine-tuning
    assert main(["plan", "--config", str(f), "--gpus", "3"]) == 1
    assert "1 training GPU(s) + 2 vLLM GPU(s)" in capsys.readouterr().out


def test_ood_evaluation_uses_the_other_env_and_restores_the_trainer(tmp_path):
    from types import SimpleNamespace

    from hero_gym.agents.base import TrainConfig
    from hero_gym.agents.ood_eval import evaluate_out_of_domain

    cfg = TrainConfig(env_id="hero_gym/TauRetail-v0", split="train", eval_split="test", eval_k=4, eval_max_turns=12,
                      env_kwargs={"user": "U"})
    seen = {}
    trainer = SimpleNamespace(config=cfg, out_dir=tmp_path / "run")
    trainer.evaluate = lambda final: seen.update(cfg=trainer.config, out=trainer.out_dir, final=final) or "store"
    assert evaluate_out_of_domain(trainer, "hero_gym/TauAirline-v0", "test", None) == "store"
    c = seen["cfg"]
    assert (c.env_id, c.eval_split, c.eval_k, c.eval_max_turns, c.env_kwargs) == (
        "hero_gym/TauAirline-v0", "test", 4, None, {"user": "U"})  # same user and k, the env's own turn cap
    assert seen["out"] == tmp_path / "run" / "ood" / "TauAirline-v0" and seen["final"]
    assert trainer.config is cfg and trainer.out_dir == tmp_path / "run"


def test_a_bad_ood_split_is_refused_before_training(tmp_path):
    f = _write(tmp_path, BASE.replace('env = "hero_gym/WebShop-v0"', 'env = "hero_gym/TauRetail-v0"')
               .replace("eval_tasks = [0, 1]\n", "") + 'ood_env = "hero_gym/TauAirline-v0"\nood_split = "train"\n')
    args = _sweep_args(["--config", str(f)])
    with pytest.raises(ValueError, match="TauAirline-v0 has no split 'train'"):
        build_configs(args, "grpo", 4, 0, "o")
