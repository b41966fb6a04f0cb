"""`hero-gym train` and `hero-gym sweep` (hero_gym.cli dispatches here).

    hero-gym train --method hero --env hero_gym/WebShop-v0 --model smollm2 --turn-budget 5 --group-size 4 \\
        --steps 20 --out runs/hero-B5
    hero-gym sweep --methods hero,sdpo,full-demo,grpo --budgets 3,6 --seeds 0 --out runs/sweep [train options]

Any TrainConfig or method-config field without its own flag can be set with ``--set name=value`` (JSON values),
e.g. ``--set rl_coef=1`` (a distillation method + GRPO's term), ``--set ppo_epochs=2 --set mini_batch_size=8``
(GRPO), ``--set reflect_mode=per_turn`` (HERO). A sweep passes each --set to the methods that have the field.
Runs resume from their checkpoint when started again with the same --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from hero_gym.agents import METHODS, TRAIN_METHODS, TrainConfig, method_config_class, trainer_class
from hero_gym.cli_parser import StrictParser


class _Usage(Exception):
    pass


class _Parser(StrictParser):
    def error(self, message):
        raise _Usage(f"{self.prog}: {message}")


def parse_tasks(text: str | None) -> list[int] | None:
    """'all' -> None; '0-9,12' -> [0..9, 12]."""
    if text is None or text.strip() == "all":
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                out += range(a, b + 1)
            else:
                out.append(int(part))
        except ValueError:
            raise _Usage(f"bad task list {text!r}: use 'all', '3', '0-9' or '0-4,10'") from None
    return out


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("empty list")
    return vals


def _add_train_options(p: argparse.ArgumentParser, sweep: bool) -> None:
    # Every help names its unit and default (%(default)s is argparse's value), so `--help` alone explains a run.
    if not sweep:
        p.add_argument("--method", required=True, choices=TRAIN_METHODS, help="training method (required)")
        p.add_argument("--turn-budget", type=int, default=15,
                       help="training turn budget: max agent turns per training rollout (default %(default)s)")
        p.add_argument("--seed", type=int, default=0,
                       help="seed of task sampling, episode seeds and the torch/numpy RNGs (default %(default)s)")
    p.add_argument("--env", required=True, help="registered env id, e.g. hero_gym/WebShop-v0 (required; see "
                                                "`hero-gym envs`)")
    p.add_argument("--split", default="train", help="split the training tasks come from (default %(default)s)")
    p.add_argument("--tasks", default="all", help="training task indices: 'all', '0-99', '0-4,10' (default %(default)s)")
    p.add_argument("--model", default="smollm2",
                   help="smollm2 | tiny | model folder | hub id (default %(default)s: the embedded SmolLM2-135M)")
    p.add_argument("--group-size", type=int, default=8, help="rollouts per task per batch, G (default %(default)s)")
    p.add_argument("--tasks-per-step", type=int, default=4,
                   help="distinct tasks per rollout batch (default %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="optimiser steps to train for (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-5, help="AdamW peak learning rate (default %(default)s)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="rollout batches summed into one optimiser step (default %(default)s)")
    p.add_argument("--micro-batch-size", type=int, default=8,
                   help="turns per forward pass; only memory depends on it (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="generation cap per agent turn, in tokens (default %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature of training rollouts (default %(default)s)")
    p.add_argument("--teacher", choices=("current", "ema", "frozen"), default="ema",
                   help="distillation teacher weights: the live model, a moving average or the initial weights "
                        "(default %(default)s)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters instead of all weights (needs the "
                                                       "`lora` extra; default: off)")
    p.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu or cuda[:n] "
                                                    "(default %(default)s)")
    p.add_argument("--rollout-backend", choices=("hf", "vllm"), default="hf",
                   help="hf (the training model) or vllm (GPU only) generates rollouts (default %(default)s)")
    p.add_argument("--eval-split", default=None,
                   help="evaluate on this split at the end, and every --eval-every steps (default: no evaluation)")
    p.add_argument("--eval-tasks", default="all", help="evaluation task indices, as --tasks (default %(default)s)")
    p.add_argument("--eval-k", type=int, default=1, help="attempts per evaluation task (default %(default)s)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate every N optimiser steps (default %(default)s: only at the end)")
    p.add_argument("--eval-max-turns", type=int, default=None,
                   help="agent turn cap of evaluation episodes (default: the env's)")
    p.add_argument("--user", default=None,
                   help="tau envs: simulated user, 'scripted' or 'llm:POLICY_SPEC' as in hero-gym eval "
                        "(default scripted)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel across the processes of torchrun / accelerate launch (default: off)")
    p.add_argument("--reflector", default=None,
                   help="HERO reflector policy spec (default: the model itself)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other TrainConfig / method config field (JSON value), repeatable (default: none)")
    p.add_argument("--out", required=True,
                   help="parent directory: one run directory OUT/METHOD-B<budget>-s<seed> per run (required; a rerun "
                        "resumes)" if sweep else "run directory (required; a rerun resumes from its checkpoint)")


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise _Usage(f"--set wants NAME=VALUE, got {item!r}")
        name, raw = item.split("=", 1)
        try:
            out[name.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[name.strip().replace("-", "_")] = raw
    return out


def build_configs(args, method: str, budget: int, seed: int, out: str):
    """(TrainConfig, method config) from parsed arguments; --set fields go wherever they exist."""
    train = dict(env_id=args.env, split=args.split, tasks=parse_tasks(args.tasks), model=args.model, method=method,
                 turn_budget=budget, group_size=args.group_size, tasks_per_step=args.tasks_per_step, steps=args.steps,
                 lr=args.lr, grad_accum=args.grad_accum, micro_batch_size=args.micro_batch_size,
                 max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=seed, lora=args.lora,
                 teacher=args.teacher, device=args.device, rollout_backend=args.rollout_backend,
                 eval_split=args.eval_split, eval_tasks=parse_tasks(args.eval_tasks), eval_k=args.eval_k,
                 eval_every=args.eval_every, eval_max_turns=args.eval_max_turns, out_dir=out,
                 distributed=args.distributed)
    mcls = method_config_class(method)
    tfields = {f.name for f in dataclasses.fields(TrainConfig)}
    mfields = {f.name for f in dataclasses.fields(mcls)}
    mkw = {}
    for name, value in _overrides(args.set).items():
        if name in mfields:
            mkw[name] = value
        elif name in tfields:
            train[name] = value
        elif not any(name in {f.name for f in dataclasses.fields(method_config_class(m))} for m in TRAIN_METHODS):
            raise _Usage(f"--set {name}: no such field in TrainConfig or any method config")
        # else: another method's field (a sweep passes one --set list to every method)
    if args.user and args.user != "scripted":
        if not args.user.startswith("llm:") or len(args.user) == 4:
            raise _Usage(f"--user must be 'scripted' or 'llm:POLICY_SPEC', got {args.user!r}")
        from hero_gym.policies.scripted import load_policy
        train["env_kwargs"] = {**train.get("env_kwargs", {}), "user": load_policy(args.user[4:], seed=seed)}
    cfg = TrainConfig(**train)
    cfg.validate()
    mc = mcls(**mkw)
    mc.validate(cfg)
    return cfg, mc


def _run_one(args, method: str, budget: int, seed: int, out: str) -> dict:
    cfg, mc = build_configs(args, method, budget, seed, out)
    kw = {}
    if method == "hero" and args.reflector:
        from hero_gym.policies.scripted import load_policy
        kw["reflector"] = load_policy(args.reflector, env_id=cfg.env_id, seed=seed)
    t0 = time.perf_counter()
    trainer = trainer_class(method)(cfg, mc, **kw)
    start = trainer.step
    history = trainer.train()
    last = history[-1] if history else {}
    print(f"[{method} B={budget} seed={seed}] steps {start}->{trainer.step} in {time.perf_counter() - t0:.0f}s; "
          f"last loss {last.get('loss', float('nan')):.4g}, rollout success {last.get('success_rate', float('nan')):.2f}; "
          f"run dir {out}", flush=True)
    return last


def build_train_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hero-gym train", description="Train a policy with HERO, SDPO, Full-Demo or GRPO.")
    _add_train_options(p, sweep=False)
    return p


def build_sweep_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hero-gym sweep", description="Train methods x turn budgets x seeds (each run resumes).")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default %(default)s)")
    p.add_argument("--budgets", type=_int_list, required=True,
                   help="comma-separated training turn budgets, in agent turns, e.g. 3,6 (required)")
    p.add_argument("--seeds", type=_int_list, default=[0], help="comma-separated seeds (default 0)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and exit (default: off)")
    _add_train_options(p, sweep=True)
    return p


def train_main(argv: list[str] | None = None) -> int:
    """`hero-gym train`: train one method; returns the exit code."""
    p = build_train_parser()
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        _run_one(args, args.method, args.turn_budget, args.seed, args.out)
    except (_Usage, ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def sweep_main(argv: list[str] | None = None) -> int:
    """`hero-gym sweep`: every method x training turn budget x seed, one run directory each (resumable)."""
    p = build_sweep_parser()
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in TRAIN_METHODS]
        if bad or not methods:
            raise _Usage(f"unknown method(s) {bad}; choose from {TRAIN_METHODS}")
        runs = [(m, b, s, str(Path(args.out) / f"{m}-B{b}-s{s}")) for b in args.budgets for s in args.seeds
                for m in methods]
        for m, b, s, out in runs:  # check every configuration before the first long run starts
            build_configs(args, m, b, s, out)
        if args.dry_run:
            for r in runs:
                print(*r)
            return 0
        for m, b, s, out in runs:
            _run_one(args, m, b, s, out)
    except (_Usage, ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finals = [str(Path(out) / "eval" / "final") for *_, out in runs]
    if args.eval_split:
        print("compare:  hero-gym compare " + " ".join(finals))
        print(f"plot:     hero-gym plot budget-sweep {' '.join(finals)} --out {Path(args.out) / 'budget_sweep.png'}")
    return 0
