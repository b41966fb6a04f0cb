"""`hero-gym train` and `hero-gym sweep` (hero_gym.cli dispatches here).

    hero-gym train --method hero --env hero_gym/WebShop-v0 --model smollm2 --turn-budget 5 --group-size 4 \\
        --steps 20 --out runs/hero-B5
    hero-gym sweep --methods hero,sdpo,full-demo,grpo --budgets 3,6 --seeds 0 --out runs/sweep [train options]

Any TrainConfig or method-config field without its own flag can be set with ``--set name=value`` (JSON values),
e.g. ``--set rl_coef=1`` (a distillation method + GRPO's term), ``--set ppo_epochs=2 --set mini_batch_size=8``
(GRPO), ``--set reflect_mode=per_turn`` (HERO). A sweep passes each --set to the methods that have the field.
Runs resume from their checkpoint when started again with the same --out.

``--config FILE`` (TOML, YAML or JSON; hero_gym.config_file) holds the same settings as keys: any option above,
any TrainConfig / method config field, and a ``[plan]`` table that only `hero-gym plan` reads. Flags given
explicitly override the file. The shipped recipe files are in agents/recipes/ (see agents/RECIPE.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from hero_gym.agents import METHODS, TRAIN_METHODS, TrainConfig, method_config_class, trainer_class
from hero_gym.agents.base import TEACHERS
from hero_gym.cli_parser import StrictParser
from hero_gym.config_file import ConfigFileError, add_config_option, config_tokens, read_config, split_config_arg

# Tables of a run config file that other commands read (`hero-gym plan` reads [plan]).
CONFIG_SECTIONS = ("plan",)
# TrainConfig fields whose command-line flag has another name: a file may use either.
FIELD_FLAGS = {"env_id": "env", "out_dir": "out"}


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
    p.add_argument("--teacher", choices=TEACHERS, default="ema",
                   help="distillation teacher weights: ema (a moving average, fp32 copy), ema-bf16 (the same in bf16, "
                        "half the memory), frozen (the initial weights) or current (the live model, no copy) "
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
                   help="HERO reflector: any policy spec (hf:PATH, vllm:MODEL, http://HOST/v1#MODEL, scripted:TEXT, "
                        "pkg.mod:factory) (default: the model being trained)")
    p.add_argument("--ood-env", default=None,
                   help="after training, also evaluate the final model on this env (e.g. hero_gym/TauAirline-v0, "
                        "out of domain) into OUT/ood/<env>/eval/final, with the same --user and --eval-k (default: none)")
    p.add_argument("--ood-split", default="test", help="split of --ood-env (default %(default)s)")
    p.add_argument("--ood-tasks", default="all", help="tasks of --ood-split: 'all', '0-49', ... (default %(default)s)")
    add_config_option(p)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other TrainConfig / method config field (JSON value), repeatable (default: none)")
    p.add_argument("--out", required=True,
                   help="parent directory: one run directory OUT/METHOD-B<budget>-s<seed> per run (required; a rerun "
                        "resumes)" if sweep else "run directory (required; a rerun resumes from its checkpoint)")


def config_fields() -> set[str]:
    """Keys a run config file may hold without a flag of their own: TrainConfig and every method config's fields."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for m in TRAIN_METHODS:
        names |= {f.name for f in dataclasses.fields(method_config_class(m))}
    return names - set(FIELD_FLAGS)


# One file serves `train` (one run) and `sweep` (methods x budgets x seeds): each command reads the other's key.
_PLURAL = {"method": "methods", "turn_budget": "budgets", "seed": "seeds"}


def adapt_run_config(data: dict, explicit: list[str], sweep: bool) -> dict:
    """A run config mapping in the form `train` (sweep=False) or `sweep` expects.

    `train` takes a single-element ``methods`` / ``budgets`` / ``seeds`` as its ``method`` / ``turn_budget`` /
    ``seed``; a longer list must be narrowed by the explicit flag (``--seed 2``), never silently cut to its first
    element. `sweep` takes ``method`` / ``turn_budget`` / ``seed`` as one-element lists."""
    data = {FIELD_FLAGS.get(k, k): v for k, v in data.items()}
    for one, many in _PLURAL.items():
        if sweep and one in data:
            if many in data:
                raise ConfigFileError(f"the config file sets both {one!r} and {many!r}; keep one")
            data[many] = [data.pop(one)]
        elif not sweep and many in data:
            if one in data:
                raise ConfigFileError(f"the config file sets both {one!r} and {many!r}; keep one")
            values = data.pop(many)
            values = values if isinstance(values, list) else [x.strip() for x in str(values).split(",") if x.strip()]
            flag = "--" + one.replace("_", "-")
            given = any(t == flag or t.startswith(flag + "=") for t in explicit)
            if len(values) == 1:
                data[one] = values[0]
            elif not given:
                raise ConfigFileError(f"the config file lists {many} {values}: `hero-gym train` runs one, pick it "
                                      f"with {flag} (or run them all with `hero-gym sweep --config`)")
    return data


def with_config(parser: argparse.ArgumentParser, argv: list[str], sweep: bool) -> list[str]:
    """argv with ``--config FILE`` expanded (hero_gym.config_file): the file's settings first, explicit flags win."""
    try:
        path, rest = split_config_arg(list(argv))
        if path is None:
            return rest
        data = adapt_run_config(read_config(path), rest, sweep)
        tokens, _ = config_tokens(data, parser, config_fields(), CONFIG_SECTIONS, source=str(path))
    except ConfigFileError as e:
        raise _Usage(str(e)) from None
    return tokens + rest


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


def load_user(spec: str, seed: int):
    """The simulated customer of a tau env from ``--user llm:POLICY_SPEC``: any policy spec (an OpenAI-compatible
    server ``http://HOST:PORT/v1#MODEL``, ``hf:PATH``, ``vllm:MODEL``, ``scripted:TEXT``, ``pkg.mod:factory``)."""
    if not spec.startswith("llm:") or len(spec) == 4:
        raise _Usage(f"--user must be 'scripted' or 'llm:POLICY_SPEC', got {spec!r}")
    from hero_gym.policies.scripted import load_policy
    return load_policy(spec[4:], seed=seed)


def load_reflector(spec: str, env_id: str, seed: int):
    """HERO's reflector from ``--reflector POLICY_SPEC`` (the same specs as --user takes after 'llm:')."""
    from hero_gym.policies.scripted import load_policy
    return load_policy(spec, env_id=env_id, seed=seed)


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
        train["env_kwargs"] = {**train.get("env_kwargs", {}), "user": load_user(args.user, seed)}
    cfg = TrainConfig(**train)
    cfg.validate()
    if getattr(args, "ood_env", None):  # checked now, not after hours of training
        from hero_gym.agents.ood_eval import ood_config
        ood_config(cfg, args.ood_env, args.ood_split, parse_tasks(args.ood_tasks)).validate()
    mc = mcls(**mkw)
    mc.validate(cfg)
    return cfg, mc


def _run_one(args, method: str, budget: int, seed: int, out: str) -> dict:
    cfg, mc = build_configs(args, method, budget, seed, out)
    kw = {}
    if method == "hero" and args.reflector:
        kw["reflector"] = load_reflector(args.reflector, cfg.env_id, seed)
    t0 = time.perf_counter()
    trainer = trainer_class(method)(cfg, mc, **kw)
    start = trainer.step
    history = trainer.train()
    last = history[-1] if history else {}
    if args.ood_env and trainer.is_main:
        from hero_gym.agents.ood_eval import evaluate_out_of_domain
        where = evaluate_out_of_domain(trainer, args.ood_env, args.ood_split, parse_tasks(args.ood_tasks))
        print(f"[{method} B={budget} seed={seed}] out-of-domain evaluation on {args.ood_env}: {where}", flush=True)
    print(run_summary(f"{method} B={budget} seed={seed}", start, trainer.step, time.perf_counter() - t0, history, out),
          flush=True)
    return last


def run_summary(name: str, start: int, end: int, seconds: float, history: list[dict], out: str) -> str:
    """The line a finished training run prints: steps, time, last loss and success, and how many steps had a gradient.

    A run whose every step had a zero gradient (e.g. GRPO where every group's rollouts tie) learned nothing; saying
    so here spares the user an hour of evaluating what is, up to weight decay, the model it started from.
    """
    last = history[-1] if history else {}
    norms = [h["grad_norm"] for h in history if "grad_norm" in h]
    moved = sum(1 for g in norms if g > 0)
    line = (f"[{name}] steps {start}->{end} in {seconds:.0f}s; last loss {last.get('loss', float('nan')):.4g}, "
            f"rollout success {last.get('success_rate', float('nan')):.2f}; "
            + (f"steps with a non-zero gradient: {moved} of {len(norms)}; " if norms else "") + f"run dir {out}")
    if norms and not moved:
        what = ("this run learned nothing: its weights are the starting model's" if start == 0 else
                f"steps {start + 1}-{end} learned nothing: the weights are its step-{start} checkpoint's")
        line += f"\n[{name}] WARNING: no step had a gradient, so {what}, up to weight decay"
    return line


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
        args = p.parse_args(with_config(p, sys.argv[1:] if argv is None else argv, sweep=False))
        _run_one(args, args.method, args.turn_budget, args.seed, args.out)
    except (_Usage, ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def sweep_parser() -> argparse.ArgumentParser:
    """The parser of `hero-gym sweep` (its options are the keys a run config file may hold)."""
    return build_sweep_parser()


def sweep_main(argv: list[str] | None = None) -> int:
    """`hero-gym sweep`: every method x training turn budget x seed, one run directory each (resumable)."""
    p = build_sweep_parser()
    try:
        args = p.parse_args(with_config(p, sys.argv[1:] if argv is None else argv, sweep=True))
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
