"""The `hero-gym` command: list envs, evaluate policies, compare/plot/summarize/export runs, and dispatch to the
data and training commands.

Every mistake in the arguments ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from hero_gym.cli_parser import StrictParser
from hero_gym.config_file import ConfigFileError, add_config_option, expand_config

EXIT_USAGE = 2

# Subcommands owned by other modules: everything after the name goes to them untouched.
_DISPATCH = {
    "data": ("hero_gym.download", "data_main", "download and verify benchmark data (hero-gym data --help)"),
    "train": ("hero_gym.agents.cli", "train_main", "train a policy with HERO, SDPO, Full-Demo or GRPO"),
    "sweep": ("hero_gym.agents.cli", "sweep_main", "train methods x turn budgets x seeds"),
    "plan": ("hero_gym.agents.plan", "plan_main", "per-GPU memory and hours of a training recipe (offline)"),
}


class UsageError(Exception):
    """A bad argument: reported as one line, exit code 2."""


class _Parser(StrictParser):
    def error(self, message):  # one line instead of argparse's usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    v = _non_negative_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="registered env id (see `hero-gym envs`)")
    p.add_argument("--split", default=None, help="task split (default: the env's default split)")
    p.add_argument("--policy", required=True,
                   help="policy spec: smollm2 | hf:PATH | vllm:MODEL | http:URL#MODEL | oracle | random | pkg.mod:factory")
    p.add_argument("--k", type=_positive_int, default=1, help="attempts per task (default %(default)s)")
    p.add_argument("--max-turns", type=_positive_int, default=None,
                   help="agent turn budget per episode (default: the env's)")
    p.add_argument("--tasks", default="all", help="'all', '0-9', '3' or '0-4,10' (default %(default)s)")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N selected tasks")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="base seed; each (task, attempt) derives its own")
    p.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=256,
                   help="generation cap per turn (default %(default)s)")
    p.add_argument("--user", default=None, help="tau envs: simulated user, 'scripted' or 'llm:POLICY_SPEC'")
    p.add_argument("--judge", default=None,
                   help="tau2 envs: policy spec of the judge that scores NL assertions (without one they are not evaluated)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="episodes advanced together; each is stored as it ends (default: 32)")
    p.add_argument("--retry-errors", type=_non_negative_int, default=0, metavar="N",
                   help="rerun episodes that ended in error up to N more times in this invocation (a later "
                        "invocation always reruns them; default %(default)s)")
    p.add_argument("--method", default=None, help="training method of the evaluated checkpoint (for budget sweeps)")
    p.add_argument("--train-budget", type=_positive_int, default=None,
                   help="training turn budget of the evaluated checkpoint (for budget sweeps)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for a local model (default: torch's default)")
    p.add_argument("--prefix-cache-mb", type=_non_negative_int, default=0,
                   help="local HF model: keep each conversation's attention cache (MB) so a turn only reads its new "
                        "tokens (default %(default)s; 0 = off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_demo_options(p: argparse.ArgumentParser) -> None:
    """Flags named like hero_gym.demo.DemoConfig's fields; unset ones keep its defaults."""
    from hero_gym.demo import DemoConfig

    d = DemoConfig()
    p.add_argument("--policy", help=f"the model under test (default {d.policy}, the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--baselines", help=f"comma-separated reference policies run on the same episodes "
                                       f"(default {','.join(d.baselines)})")
    p.add_argument("--tasks", help=f"test goals (default {d.tasks})")
    p.add_argument("--k", type=_positive_int, help=f"attempts per goal (default {d.k})")
    p.add_argument("--max-turns", type=_positive_int, help=f"turn budget per episode (default {d.max_turns})")
    p.add_argument("--max-new-tokens", type=_positive_int, help=f"generation cap per model turn (default {d.max_new_tokens})")
    p.add_argument("--seed", type=_non_negative_int, help=f"base seed (default {d.seed})")
    p.add_argument("--out", help=f"output folder (default {d.out}; a rerun resumes)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for the model (default: all cores)")
    p.add_argument("--prefix-cache-mb", type=_non_negative_int,
                   help=f"model attention cache per conversation in MB (default {d.prefix_cache_mb})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hero-gym", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register envs or define policy factories); repeatable")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("envs", help="list registered environments")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")

    p = sub.add_parser("eval", help="evaluate a policy: k attempts per task, stored per episode, resumable")
    _add_eval_options(p)
    add_config_option(p)

    p = sub.add_parser("demo", help="the embedded SmolLM2 next to the oracle and a random policy on WebShop test "
                                    "goals: summary with intervals, compare table, plot, one trajectory (results/demo)")
    _add_demo_options(p)

    p = sub.add_parser("summary", help="metrics table of runs (mean@k, pass@k, pass^k with 95%% CIs, turns)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (as `hero-gym eval --out` writes them)")
    p.add_argument("--k", type=_positive_int, default=None, help="k for pass@k/pass^k (default: fewest attempts)")
    p.add_argument("--csv", help="also write the full table as CSV")

    p = sub.add_parser("compare", help="head-to-head table of runs with paired tests against the first")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories; the first is the baseline unless --baseline")
    p.add_argument("--k", type=_positive_int, default=None, help="k for pass@k/pass^k (default: fewest attempts)")
    p.add_argument("--baseline", type=_non_negative_int, default=0, help="index of the baseline run (default 0)")
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--md", help="write the table as Markdown")

    p = sub.add_parser("plot", help="figures from runs")
    psub = p.add_subparsers(dest="plot", metavar="KIND", parser_class=_Parser)
    for name, help_ in (("budget-sweep", "success and turns against the turn budget, per method"),
                        ("heatmap", "per-task success rate, one row per run, tasks sorted by difficulty")):
        q = psub.add_parser(name, help=help_)
        q.add_argument("runs", nargs="+", metavar="RUN", help="evaluation run directories (e.g. a sweep's "
                                                              "*/eval/final)")
        q.add_argument("--out", required=True, help="figure to write: .png, .pdf or .svg")
        if name == "budget-sweep":
            q.add_argument("--budget", choices=("auto", "train", "eval"), default="auto",
                           help="x axis: the checkpoints' training turn budget, or the evaluation turn budget of "
                                "plain eval runs (default auto: train when every record has one, else eval)")
    q = psub.add_parser("credit", help="action tokens of a training step shaded by the teacher-student divergence")
    q.add_argument("run", metavar="RUN", help="training run directory (with credit/step_NNNNN.jsonl)")
    q.add_argument("--step", type=_positive_int, required=True, help="training step (as in train_log.jsonl)")
    q.add_argument("--rollouts", type=_positive_int, default=4, help="rollouts shown (default %(default)s)")
    q.add_argument("--out", required=True, help="figure to write: .png, .pdf or .svg")

    p = sub.add_parser("view", help="one self-contained HTML page of a run (or two side by side): episodes, turns, "
                                    "training steps with per-token credit")
    p.add_argument("runs", nargs="+", metavar="RUN", help="evaluation or training run directory; a second one is "
                                                          "shown side by side")
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN/report.html)")

    p = sub.add_parser("export", help="export a run as chat JSONL (TRL/verl) or Parquet (flat fields)")
    p.add_argument("run", metavar="RUN", help="evaluation run directory")
    p.add_argument("--out", required=True, help="F.jsonl (chat messages + tools) or F.parquet (flat fields)")
    p.add_argument("--only-success", action="store_true", help="chat JSONL: successful episodes only")

    for name, (_, _, help_) in _DISPATCH.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


# ----- commands ----------------------------------------------------------------------------------------------------
def _cmd_envs(args) -> int:
    import pandas as pd

    from hero_gym.registry import ENV_SPECS

    rows = [{"id": s.id, "splits": ", ".join(f"{k} {v}" for k, v in s.splits.items()), "default split": s.default_split,
             "max turns": s.default_max_turns, "description": s.description} for s in ENV_SPECS.values()]
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False) if args.markdown else df.to_string(index=False))
    return 0


def _cmd_eval(args) -> int:
    from hero_gym.evaluate import run_eval
    from hero_gym.records import printable

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # overrides OMP_NUM_THREADS=1 that test setups export

    store = run_eval(args.env, args.policy, args.out, split=args.split, k=args.k, max_turns=args.max_turns,
                     tasks=args.tasks, limit=args.limit, seed=args.seed, temperature=args.temperature,
                     max_new_tokens=args.max_new_tokens, user=args.user, judge=args.judge, method=args.method,
                     train_budget=args.train_budget, batch_size=args.batch_size, retry_errors=args.retry_errors,
                     progress=not args.no_progress,
                     policy_kwargs={"prefix_cache_mb": args.prefix_cache_mb} if _wants_cache(args) else None)
    o = store.outcome
    print(f"run: {store.dir}")
    if o.stored_attempts > o.k:
        print(f"note: {store.dir} stores {o.stored_attempts} attempts per task and you asked --k {o.k}: the table "
              f"scores attempts 0-{o.k - 1} of the {len(o.tasks)} selected task(s) (`hero-gym summary {store.dir}` "
              "scores all)", file=sys.stderr)
    tasks = set(o.tasks)
    _print_summary([store.dir], k=None, select=lambda df: df[df["task"].isin(tasks) & (df["attempt"] < o.k)])
    if o.errors:
        first = o.errors[0]
        message = " ".join(str(first.error).split())
        print(printable(f"error: {len(o.errors)} of {len(o.tasks) * o.k} episode(s) ended in error; they are not "
                        f"results (run the same command again to retry them). First, task {first.task} attempt "
                        f"{first.attempt}: {message[:500]}"), file=sys.stderr)
        return 1
    return 0


def _wants_cache(args) -> bool:
    """The prefix cache is an option of local Hugging Face models only; other backends never see it."""
    spec = args.policy
    local = spec in ("smollm2", "tiny") or spec.startswith("hf:") or Path(spec).expanduser().is_dir()
    return bool(args.prefix_cache_mb) and local


def _print_summary(runs, k=None, csv=None, select=None) -> int:
    from hero_gym.benchmarks.stats import format_summary, summarize
    from hero_gym.records import load_frame

    df = load_frame(runs)
    table = summarize(select(df) if select else df, k)
    if csv:
        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
    print(format_summary(table))
    return 0


def _cmd_compare(args) -> int:
    from hero_gym.benchmarks.compare import compare, to_markdown, write_tables

    table = compare(args.runs, k=args.k, baseline=args.baseline)
    write_tables(table, csv=args.csv, md=args.md)
    print(to_markdown(table))
    return 0


def _cmd_plot(args) -> int:
    if not args.plot:
        raise UsageError("hero-gym plot: choose budget-sweep, heatmap or credit (see hero-gym plot --help)")
    if Path(args.out).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"hero-gym plot: --out must name a .png, .pdf or .svg file, got {args.out!r}")
    from hero_gym.benchmarks import plots

    if args.plot == "credit":
        plots.plot_credit(args.run, args.step, args.out, max_rollouts=args.rollouts)
    elif args.plot == "budget-sweep":
        plots.plot_budget_sweep(args.runs, args.out, budget=args.budget)
    else:
        plots.plot_task_heatmap(args.runs, args.out)
    print(f"wrote {args.out}")
    return 0


def _cmd_export(args) -> int:
    from hero_gym import records

    if args.out.lower().endswith(".parquet"):
        n = records.export_parquet(args.run, args.out)
    elif args.out.lower().endswith(".jsonl"):
        n = records.export_chat_jsonl(args.run, args.out, only_success=args.only_success)
    else:
        raise UsageError(f"hero-gym export: --out must end in .jsonl or .parquet, got {args.out!r}")
    print(f"wrote {n} episodes to {args.out}")
    return 0


def _cmd_view(args) -> int:
    from hero_gym.viewer import build_report

    if len(args.runs) > 2:
        raise UsageError(f"hero-gym view: give one run, or two to compare side by side; got {len(args.runs)}")
    out = build_report(args.runs, args.out or Path(args.runs[0]) / "report.html")
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB)" if size >= 1e6 else f"wrote {out} ({size / 1e3:.0f} kB)")
    return 0


def _dispatch(name: str, argv: list[str]) -> int:
    module, func, _ = _DISPATCH[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise UsageError(f"hero-gym {name}: not available in this install ({module} is missing)") from None
        raise
    return int(getattr(mod, func)(argv) or 0)


def _cmd_summary(args) -> int:
    return _print_summary(args.runs, args.k, args.csv)


def _cmd_demo(args) -> int:
    from hero_gym.demo import config_from_args, run_demo

    return 1 if run_demo(config_from_args(args))["errors"] else 0


_COMMANDS = {"envs": _cmd_envs, "eval": _cmd_eval, "demo": _cmd_demo, "summary": _cmd_summary, "compare": _cmd_compare,
             "plot": _cmd_plot, "export": _cmd_export, "view": _cmd_view}


def _run(argv: list[str]) -> int:
    parser = build_parser()
    # Global options come first; the first word that is a command ends them.
    i = 0
    while i < len(argv) and argv[i] not in _DISPATCH and argv[i] not in _COMMANDS:
        i += 2 if argv[i] == "--plugin" else 1
    head, rest = argv[:i], argv[i:]
    if rest and rest[0] == "eval":  # --config FILE: the file's settings first, explicit flags win
        eval_parser = _Parser(prog="hero-gym eval")
        _add_eval_options(eval_parser)
        try:
            expanded, _ = expand_config(rest[1:], eval_parser)
        except ConfigFileError as e:
            raise UsageError(f"hero-gym eval: {e}") from None
        argv = head + ["eval"] + expanded
    if rest and rest[0] in _DISPATCH:
        args = parser.parse_args(head)
        _import_plugins(args.plugin)
        return _dispatch(rest[0], rest[1:])
    args = parser.parse_args(argv)
    _import_plugins(args.plugin)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    return _COMMANDS[args.command](args)


def _import_plugins(modules: list[str]) -> None:
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise UsageError(f"hero-gym: cannot import plugin {m!r}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `hero-gym`; returns the exit code (0 ok, 1 failure, 2 bad usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = bool(os.environ.get("HERO_GYM_DEBUG"))
    from hero_gym.data import DataError
    from hero_gym.records import RunStoreError

    try:
        return _run(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RunStoreError, DataError, FileNotFoundError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; finished episodes are stored, run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # keep tracebacks for HERO_GYM_DEBUG=1; users get one line
        if debug:
            raise
        print(f"error: {type(e).__name__}: {e} (set HERO_GYM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
