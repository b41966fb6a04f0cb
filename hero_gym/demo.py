"""`hero-gym demo` (what `make demo` runs): the embedded SmolLM2 next to the scripted oracle and a random policy on
a few WebShop test goals, small enough for a 2-core CPU, with everything a new user should look at afterwards:

- ``<out>/<policy>/``: one run store per policy (resumable; the same goals, attempts and seeds for all three);
- ``<out>/compare.md``: the ``hero-gym compare`` table (paired against the random policy);
- ``<out>/policies.png``: mean reward and success rate per policy with 95% intervals;
- ``<out>/trajectory.md``: one episode of the model, turn by turn (what it saw, what it did, what it got);
- ``<out>/view.html``: the ``hero-gym view`` page of every episode, the model beside the oracle;
- a summary table with exact (Wilson) intervals for success and task-level bootstrap intervals for reward, and a
  short reading of the numbers, printed at the end.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEMO_DATASETS = ["webshop-1k"]


@dataclass
class DemoConfig:
    """What the demo runs. The defaults fit in a few minutes of a 2-core CPU."""

    env: str = "hero_gym/WebShop-v0"
    """Environment id (WebShop: short prompts, so a 135M model on CPU takes seconds per turn, not minutes)."""
    split: str = "test"
    """Task split."""
    tasks: str = "0-4"
    """Goals evaluated: 'all', '0-9', '3' or '0-4,10'."""
    k: int = 2
    """Attempts per goal (seeded, the same for every policy)."""
    max_turns: int = 6
    """Turn budget per episode (the oracle buys within 6 turns on these goals; 5.2 on average over the split)."""
    max_new_tokens: int = 24
    """Generation cap per model turn (WebShop actions are short)."""
    policy: str = "smollm2"
    """The model under test (any policy spec, see `hero-gym eval --help`)."""
    baselines: list[str] = field(default_factory=lambda: ["oracle", "random"])
    """Scripted reference policies run on the same episodes: the ceiling and the floor."""
    out: str = "results/demo"
    """Output folder (run stores, compare.md, policies.png, trajectory.md)."""
    seed: int = 0
    """Base seed of every episode."""
    threads: int | None = None
    """CPU threads for the local model (default: all cores)."""
    prefix_cache_mb: int = 512
    """Local model: keep each conversation's attention cache so a turn reads only its new tokens."""
    progress: bool = True
    """Show progress bars."""


def run_demo(cfg: DemoConfig, out=None) -> dict:
    """Run the demo; print the summary, the comparison and a reading to `out`. Returns the summary rows and the
    paths written. Raises DataError (one message naming the missing files and the fix) when the data is absent."""
    from hero_gym.data import DataError
    from hero_gym.download import missing, missing_message
    from hero_gym.records import printable

    out = out if out is not None else sys.stdout
    gone = missing(DEMO_DATASETS)
    if gone:
        raise DataError(missing_message(gone))
    t0, c0 = time.perf_counter(), time.process_time()
    root = Path(cfg.out)
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)  # overrides OMP_NUM_THREADS=1 from test setups
    runs, errors = [], []
    try:
        for spec in [cfg.policy, *cfg.baselines]:
            store = _evaluate(cfg, spec, root / _dir_name(spec))
            runs.append(store.dir)
            errors += [(spec, e) for e in store.outcome.errors]
    finally:  # a caller in the same process (a test, a notebook) keeps its own thread setting
        torch.set_num_threads(threads_before)
    rows = [_policy_row(r) for r in runs]
    from hero_gym.benchmarks.compare import compare, to_markdown, write_tables

    table = compare(runs, baseline=len(runs) - 1)  # against the random policy: "is it better than chance?"
    write_tables(table, md=root / "compare.md")
    png = plot_policies(rows, root / "policies.png", title=f"{cfg.env} ({cfg.split}), {rows[0]['episodes']} episodes")
    page = trajectory_page(runs[0], root / "trajectory.md")
    from hero_gym.viewer import build_report

    view = build_report([runs[0], runs[1]], root / "view.html")  # every episode, model beside the first baseline
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\n## {cfg.env} ({cfg.split}): tasks {cfg.tasks} x {cfg.k} attempts, {cfg.max_turns} turns\n", file=out)
    print(format_rows(rows), file=out)
    print("\n" + to_markdown(table), file=out)
    print(reading(rows, cfg), file=out)
    print(f"\nWrote {root / 'compare.md'}, {png}, {page}, {view} (open in a browser) and the run stores under "
          f"{root}/ ({wall:.0f} s wall, {cpu:.0f} s CPU in this process).", file=out)
    if errors:  # such episodes are left out of every figure above; say so, and fail the command
        spec, first = errors[0]
        print(printable(f"error: {len(errors)} episode(s) ended in error and are not in the figures (rerun to retry "
                        f"them); first, {spec} task {first.task} attempt {first.attempt}: {first.error}"),
              file=sys.stderr)
    return {"rows": rows, "runs": runs, "png": png, "page": page, "view": view, "wall_s": wall, "cpu_s": cpu,
            "errors": len(errors)}


def _dir_name(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)


def _evaluate(cfg: DemoConfig, spec: str, out: Path):
    from hero_gym.evaluate import run_eval

    local = spec in ("smollm2", "tiny") or spec.startswith("hf:")
    store = run_eval(cfg.env, spec, out, split=cfg.split, k=cfg.k, max_turns=cfg.max_turns, tasks=cfg.tasks,
                     seed=cfg.seed, temperature=1.0, max_new_tokens=cfg.max_new_tokens, progress=cfg.progress,
                     policy_kwargs={"prefix_cache_mb": cfg.prefix_cache_mb} if local and cfg.prefix_cache_mb else None)
    return store


def _policy_row(run: Path) -> dict:
    """Success rate with a Wilson interval over tasks (n = tasks, x = summed per-task rates, since attempts of one
    task are not independent) and mean reward with a task-level bootstrap interval."""
    from hero_gym.benchmarks.stats import bootstrap_ci, results_only, wilson_ci
    from hero_gym.records import load_frame

    df = results_only(load_frame([run]))
    n, c = len(df), int(df["success"].sum())
    by_task = df.groupby("task")
    lo_s, hi_s = wilson_ci(float(by_task["success"].mean().sum()), by_task.ngroups)
    lo, hi = bootstrap_ci(by_task["reward"].mean())
    return {"policy": str(df["policy"].iat[0]), "episodes": n, "tasks": by_task.ngroups,
            "successes": c, "success": c / n, "success_lo": lo_s, "success_hi": hi_s,
            "reward": float(df["reward"].mean()), "reward_lo": lo, "reward_hi": hi,
            "turns": float(df["turns"].mean()), "bought": float((df["termination_reason"] == "purchase").mean()),
            "tokens_out": float(df["tokens_out"].mean())}


def format_rows(rows: list[dict]) -> str:
    """The demo's summary as a Markdown table (intervals in brackets)."""
    head = ("| policy | episodes | success (Wilson 95% over tasks) | mean reward (bootstrap 95% over tasks) | bought | turns | "
            "generated tokens / episode |\n|---|---|---|---|---|---|---|")
    lines = [f"| {r['policy']} | {r['episodes']} | {r['successes']}/{r['episodes']} = {r['success']:.2f} "
             f"[{r['success_lo']:.2f}, {r['success_hi']:.2f}] | {r['reward']:.3f} [{r['reward_lo']:.3f}, "
             f"{r['reward_hi']:.3f}] | {r['bought']:.0%} | {r['turns']:.1f} | {r['tokens_out']:.0f} |" for r in rows]
    return "\n".join([head, *lines])


def reading(rows: list[dict], cfg: DemoConfig) -> str:
    """One paragraph that says what the numbers mean, including when a difference is inside the noise."""
    model, *refs = rows
    by = {r["policy"]: r for r in refs}
    oracle, rand = by.get("oracle"), by.get("random")
    n = model["episodes"]
    text = (f"\nReading: on {model['tasks']} WebShop goals x {cfg.k} attempts ({n} episodes, {cfg.max_turns} turns "
            f"each), {model['policy']} bought a product in {model['bought']:.0%} of episodes and scored a mean "
            f"reward of {model['reward']:.3f} [{model['reward_lo']:.3f}, {model['reward_hi']:.3f}]")
    if rand is not None:
        overlap = model["reward_lo"] <= rand["reward_hi"] and rand["reward_lo"] <= model["reward_hi"]
        text += (f", against {rand['reward']:.3f} [{rand['reward_lo']:.3f}, {rand['reward_hi']:.3f}] for random "
                 f"clicks: " + ("the intervals overlap, so with this few episodes the two are not distinguishable"
                                if overlap else "the intervals do not overlap"))
    if oracle is not None:
        text += (f". The scripted oracle, which looks up the goal's target product, reaches {oracle['reward']:.3f} "
                 f"(success {oracle['successes']}/{oracle['episodes']}): the ceiling of this env under the same "
                 "turn budget")
    text += (f". Success means a purchase with reward 1.0; with this few goals a rate of 0 still allows up to "
             f"{model['success_hi']:.0%} (Wilson upper bound over {model['tasks']} tasks). An untrained 135M model is not expected to shop well: "
             "the demo shows the whole path (data, env, model, records, metrics, comparison) and where a trained "
             "policy would have to land. Raise --tasks/--k for tighter intervals; `hero-gym train` improves the model.")
    return text


def plot_policies(rows: list[dict], out_png: Path, title: str = "") -> Path:
    """Two panels: mean reward and success rate per policy, each with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    names = [r["policy"] for r in rows]
    for ax, key, label in ((axes[0], "reward", "mean reward (95% bootstrap over tasks)"),
                           (axes[1], "success", "success rate (95% Wilson over tasks)")):
        vals = [r[key] for r in rows]
        err = [[max(0.0, v - r[key + "_lo"]) for v, r in zip(vals, rows)],
               [max(0.0, r[key + "_hi"] - v) for v, r in zip(vals, rows)]]  # rounding can put v a hair outside
        bars = ax.bar(names, vals, yerr=err, capsize=4, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"][:len(rows)])
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        ax.set_ylim(0, 1.05)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def trajectory_page(run: Path, out_md: Path, task: int | None = None, attempt: int = 0) -> Path:
    """A readable Markdown page of one stored episode: the goal page, then each turn's action, the page it led to
    and the reward (default: the first stored episode)."""
    from hero_gym.records import RunStore

    recs = sorted(RunStore(run).load(), key=lambda r: (r.task, r.attempt))
    pick = next((r for r in recs if (task is None or r.task == task) and r.attempt == attempt), None)
    if pick is None:
        raise ValueError(f"{run} has no stored episode for task {task}, attempt {attempt}")
    traj = pick.trajectory or {}
    lines = [f"# {pick.policy} on {pick.env} ({pick.split}), task {pick.task}, attempt {pick.attempt}", "",
             f"Result: reward {pick.reward:.3f}, success {pick.success}, {pick.turns} turns, ended by "
             f"`{pick.termination_reason}`" + (f", error: {pick.error}" if pick.error else "") + ".", "",
             "## What the agent saw first", "", _quote(traj.get("initial_observation", ""))]
    for turn in traj.get("turns", []):
        info = turn.get("info") or {}
        note = f" (invalid: {info['invalid_reason']})" if info.get("invalid_reason") else ""
        lines += ["", f"## Turn {turn['index'] + 1}: reward {turn.get('reward', 0.0):g}{note}", "", "Action:", "",
                  _quote(turn.get("action", "")), "", "Page after it:", "", _quote(turn.get("observation", ""))]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines) + "\n")
    return out_md


def _quote(text: str, limit: int = 1500) -> str:
    text = text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"
    return "```text\n" + text.replace("```", "'''") + "\n```"


def config_from_args(args) -> DemoConfig:
    """A DemoConfig from parsed `hero-gym demo` arguments (flags named like the fields)."""
    known = {f.name for f in dataclasses.fields(DemoConfig)}
    kw = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if getattr(args, "no_progress", False):
        kw["progress"] = False
    if "baselines" in kw and isinstance(kw["baselines"], str):
        kw["baselines"] = [b for b in kw["baselines"].split(",") if b]
    return DemoConfig(**kw)


__all__ = ["DemoConfig", "run_demo", "format_rows", "reading", "plot_policies", "trajectory_page"]
