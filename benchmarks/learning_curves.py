"""Learning curves from stored training runs: held-out success vs optimiser step, with intervals.

A training run directory (``hero-gym train --eval-split ... --eval-every N``) holds ``eval/step_NNNNN/`` and
``eval/final/`` run stores and ``train_log.jsonl``. For every evaluation point this module reports mean@k with a
percentile bootstrap over tasks, Wilson and Clopper-Pearson intervals over tasks (n = tasks, x = the sum of the
per-task success rates, as ``hero-gym compare`` does: exact for k = 1, conservative for k > 1, since attempts of one
task are not independent and counting them as trials would narrow the interval), mean turns and the invalid-action
rate of the evaluation episodes, and the mean reward with its task bootstrap (WebShop's partial-credit score moves
long before success does); and, against a start point (the warm start's evaluation on the same tasks), the
task-paired bootstrap interval of the difference in success and in reward. The training log adds what explains a flat curve: loss,
gradient norm, rollout success and the method's own counters. With ``--pool``, the final points of runs that differ
only in their seed (``grpo-B8-s0``, ``grpo-B8-s1``, ...) are also pooled into one row per configuration (see
:func:`pooled_table`).

    python -m hero_gym.benchmarks.learning_curves RUN_DIR... --start START_EVAL_DIR --md curves.md --png curves.png
    python -m hero_gym.benchmarks.learning_curves RUN_DIR... --start START_EVAL_DIR --pool --md curves.md
    python -m hero_gym.benchmarks.learning_curves RUN_DIR... --costs costs.md   # s/step, CPU s, RSS, tokens/s
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hero_gym.benchmarks.compare import mcnemar_exact
from hero_gym.benchmarks.stats import bootstrap_ci, clopper_pearson_ci, per_task, wilson_ci
from hero_gym.records import RunStore, load_frame

# The names the trainers log (agents/base.py, grpo.py, distill.py, hero.py): why a method does not learn is read
# from these, so a renamed field must not silently drop its column.
LOG_FIELDS = ("loss", "grad_norm", "success_rate", "mean_reward", "mean_turns", "invalid_action_rate", "loss_tokens",
              "active_tokens", "zero_adv_groups", "selected_frac", "echo_rate", "step_s")


def invalid_rate(run_dir: str | Path) -> float:
    """Share of agent turns the env marked invalid, over the stored trajectories of a run store."""
    bad = total = 0
    for rec in RunStore(run_dir).load():
        for turn in (rec.trajectory or {}).get("turns", []):
            total += 1
            bad += bool(turn.get("invalid"))
    return bad / total if total else float("nan")


def exact_intervals(successes: float, n: int) -> dict:
    """95% Wilson and Clopper-Pearson intervals of a binomial proportion (tasks as the trials)."""
    if n == 0:
        return {"wilson_lo": np.nan, "wilson_hi": np.nan, "cp_lo": np.nan, "cp_hi": np.nan}
    (wlo, whi), (clo, chi) = wilson_ci(successes, n), clopper_pearson_ci(successes, n)
    return {"wilson_lo": wlo, "wilson_hi": whi, "cp_lo": clo, "cp_hi": chi}


def _load(store_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A store's episodes and their per-task table."""
    df = load_frame([store_dir])
    return df, per_task(df)


def eval_point(store_dir: str | Path, *, n_boot: int = 2000, seed: int = 0, loaded=None) -> dict:
    """One evaluation point: mean@k, its intervals, turns and invalid-action rate (`loaded`: `_load(store_dir)`)."""
    df, t = loaded if loaded is not None else _load(store_dir)
    lo, hi = bootstrap_ci(t["rate"], n_boot=n_boot, seed=seed)
    rlo, rhi = bootstrap_ci(t["reward"], n_boot=n_boot, seed=seed)
    return {"tasks": len(t), "k": t.attrs["k"], "episodes": len(df), "successes": int(df["success"].sum()),
            "success": float(t["rate"].mean()), "boot_lo": lo, "boot_hi": hi,
            **exact_intervals(float(t["rate"].sum()), len(t)),
            "reward": float(t["reward"].mean()), "reward_lo": rlo, "reward_hi": rhi, "turns": float(df["turns"].mean()),
            "invalid_rate": invalid_rate(store_dir),
            "method": df["method"].dropna().iloc[0] if df["method"].notna().any() else None,
            "train_budget": df["train_budget"].dropna().iloc[0] if df["train_budget"].notna().any() else None}


def _step_of(store: Path, run_dir: Path) -> int:
    if store.name == "final":
        log = run_dir / "train_log.jsonl"
        lines = log.read_text().splitlines() if log.is_file() else []
        return json.loads(lines[-1])["step"] if lines else 0
    return int(store.name.split("_")[-1])


def curve_table(run_dirs, start: str | Path | None = None, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (run, evaluation point), step 0 = the start point when given."""
    rows = []
    start_tasks = None
    if start is not None:
        loaded = _load(start)
        rows.append({"run": "start", "step": 0, **eval_point(start, n_boot=n_boot, seed=seed, loaded=loaded)})
        start_tasks = loaded[1]
    for d in map(Path, run_dirs):
        stores = sorted((d / "eval").glob("step_*")) + [p for p in [d / "eval" / "final"] if p.is_dir()]
        for s in stores:
            if not RunStore(s).episodes_path.is_file():
                continue
            loaded = _load(s)
            row = {"run": d.name, "step": _step_of(s, d), **eval_point(s, n_boot=n_boot, seed=seed, loaded=loaded)}
            if start_tasks is not None:
                tasks = loaded[1]
                for col, name in (("rate", "diff"), ("reward", "reward_diff")):
                    diff = (tasks[col] - start_tasks[col]).dropna()  # paired on the tasks both evaluated
                    row[name] = float(diff.mean()) if len(diff) else np.nan
                    row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
            rows.append(row)
    return pd.DataFrame(rows).drop_duplicates(["run", "step"], keep="last")


def _settings(d: Path) -> dict | None:
    """A run's config.json flattened, without what differs between seeds of one configuration."""
    f = d / "config.json"
    if not f.is_file():
        return None
    out = {}

    def walk(x, prefix):
        for k, v in x.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif k not in ("seed", "out_dir"):
                out[prefix + k] = v
    walk(json.loads(f.read_text()), "")
    return out


def _check_same_config(config: str, dirs: list[Path]) -> None:
    known = [(d, c) for d in dirs if (c := _settings(d)) is not None]
    if not known:
        return
    ref_dir, ref = known[0]
    for d, c in known[1:]:
        differ = sorted(k for k in ref.keys() | c.keys() if ref.get(k) != c.get(k))
        if differ:
            raise ValueError(f"{ref_dir} and {d} are both {config}-s* but their config.json differ in {differ[:5]}: "
                             "not seeds of one configuration")


def pooled_table(run_dirs, start: str | Path, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per configuration: the final evaluations of runs named ``<config>-s<seed>`` pooled over their seeds.

    Per task, each seed's success rate and mean reward are averaged over the seeds, and the start point's are
    subtracted; the interval is a percentile bootstrap over tasks of that seed-averaged difference, so it holds the
    seeds fixed (the per-seed differences, beside it, show how far seeds disagree). wins_tasks / losses_tasks count
    the tasks whose seed-averaged success rose / fell, with the exact sign test over them. Only tasks evaluated by
    the start point and by every seed are pooled. Runs of one name whose ``config.json`` differ in anything but the
    seed and the output folder (two sweeps' ``grpo-B8-s0``, say) are an error, not seeds.
    """
    groups: dict[str, list[Path]] = {}
    for d in map(Path, run_dirs):
        if (d / "eval" / "final").is_dir():
            groups.setdefault(re.sub(r"-s\d+$", "", d.name), []).append(d)
    if not groups:
        raise ValueError("no run has a final evaluation (eval/final) to pool")
    start_t = _load(start)[1]
    rows = []
    for config, dirs in groups.items():
        _check_same_config(config, dirs)
        tables = [_load(d / "eval" / "final")[1] for d in dirs]
        tasks = start_t.index
        for t in tables:
            tasks = tasks.intersection(t.index)
        row = {"config": config, "seeds": len(dirs), "tasks": len(tasks)}
        for col, name in (("rate", "diff"), ("reward", "reward_diff")):
            per_seed = pd.concat([t.loc[tasks, col] for t in tables], axis=1)
            seed_mean = per_seed.mean(axis=1)
            diff = seed_mean - start_t.loc[tasks, col]
            row["success" if col == "rate" else "reward"] = float(seed_mean.mean())
            row[name] = float(diff.mean())
            row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
            row[f"{name}_per_seed"] = " ".join(f"{v:+.3f}" for v in (per_seed.sub(start_t.loc[tasks, col], axis=0)
                                                                       .mean(axis=0)))
            if col == "rate":
                row["wins_tasks"], row["losses_tasks"] = int((diff > 0).sum()), int((diff < 0).sum())
                row["sign_test_p"] = mcnemar_exact(row["wins_tasks"], row["losses_tasks"])
        rows.append(row)
    return pd.DataFrame(rows)


def log_table(run_dir: str | Path) -> pd.DataFrame:
    """The training log's diagnostic fields per step (the fields a run logs; others are left out)."""
    lines = (Path(run_dir) / "train_log.jsonl").read_text().splitlines()
    df = pd.DataFrame([json.loads(x) for x in lines])
    return df[["step"] + [f for f in LOG_FIELDS if f in df.columns] + [c for c in df.columns if c.startswith("total_")]]


COST_FIELDS = ("step_s", "cpu_s", "rollout_s", "env_turns", "episodes", "gen_tokens", "gen_tokens_per_s",
               "rollout_tokens_in", "peak_rss_mb")


def cost_table(run_dirs) -> pd.DataFrame:
    """Per run: the mean of each cost field over its logged steps (the first step, which loads and warms up, is
    left out when there are more), and the largest peak RSS."""
    rows = []
    for d in map(Path, run_dirs):
        log = d / "train_log.jsonl"
        if not log.is_file():
            continue
        df = pd.DataFrame([json.loads(x) for x in log.read_text().splitlines()])
        steady = df.iloc[1:] if len(df) > 1 else df
        row = {"run": d.name, "method": df["method"].iloc[0], "steps": len(df)}
        row.update({f: float(steady[f].mean()) for f in COST_FIELDS if f in df.columns and f != "peak_rss_mb"})
        if "peak_rss_mb" in df.columns:
            row["peak_rss_mb"] = float(df["peak_rss_mb"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    cols = ["run", "step", "tasks", "k", "success", "boot_lo", "boot_hi", "wilson_lo", "wilson_hi", "cp_lo", "cp_hi",
            "diff", "diff_lo", "diff_hi", "reward", "reward_lo", "reward_hi", "reward_diff", "reward_diff_lo",
            "reward_diff_hi", "turns", "invalid_rate"]
    cols = [c for c in cols if c in table.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table[cols].itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


def plot_curves(table: pd.DataFrame, out_png: str | Path):
    """Success and mean reward (bootstrap bars) and mean turns vs step, one line per run, the start point's interval
    as a grey band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_r, ax_t) = plt.subplots(1, 3, figsize=(16, 4.2))
    start = table[table["run"] == "start"]
    runs = [r for r in dict.fromkeys(table["run"]) if r != "start"]
    for i, r in enumerate(runs):
        g = pd.concat([start, table[table["run"] == r]]).sort_values("step")
        x = g["step"] + (i - (len(runs) - 1) / 2) * 0.08  # offsets keep coinciding runs visible
        marker = "osD^vP*X"[i % 8]
        for ax, col, lo, hi in ((ax_s, "success", "boot_lo", "boot_hi"), (ax_r, "reward", "reward_lo", "reward_hi")):
            ax.errorbar(x, g[col], yerr=np.vstack([g[col] - g[lo], g[hi] - g[col]]), marker=marker, capsize=3, label=r)
        ax_t.plot(x, g["turns"], marker=marker, label=r)
    for _, s in start.iterrows():
        ax_s.axhspan(s["boot_lo"], s["boot_hi"], color="grey", alpha=0.15, label="start point 95% CI")
        ax_r.axhspan(s["reward_lo"], s["reward_hi"], color="grey", alpha=0.15, label="start point 95% CI")
    ax_s.set(xlabel="optimiser step", ylabel="held-out success, mean@k (fraction)", ylim=(-0.02, 1.02),
             title="Success vs step (bars: 95% task bootstrap)")
    ax_r.set(xlabel="optimiser step", ylabel="held-out mean reward", ylim=(-0.02, 1.02),
             title="Reward vs step (bars: 95% task bootstrap)")
    ax_t.set(xlabel="optimiser step", ylabel="mean turns per evaluation episode", title="Turns vs step")
    for ax in (ax_s, ax_r, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="learning_curves", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="training run directories (with eval/step_*/ and eval/final/)")
    p.add_argument("--start", default=None, help="run store of the start point's evaluation (same tasks)")
    p.add_argument("--md", default=None, help="write the table (and each run's training log) as markdown")
    p.add_argument("--png", default=None, help="write the plot")
    p.add_argument("--pool", action="store_true", help="also pool the final points of runs that differ only in "
                                                           "their seed (NAME-sN), against --start")
    p.add_argument("--costs", default=None, help="write the per-run cost table (s/step, CPU s, RSS, tokens/s)")
    args = p.parse_args(argv)
    if args.pool and args.start is None:
        print("error: --pool needs --start", file=sys.stderr)
        return 2
    if args.costs:
        Path(args.costs).write_text(cost_table(args.runs).to_markdown(index=False, floatfmt=".4g") + "\n")
    try:
        table = curve_table(args.runs, args.start)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = to_markdown(table)
    if args.pool:
        pooled = pooled_table(args.runs, args.start)
        text += ("\n\nFinal points pooled over seeds (task bootstrap of the seed-averaged difference from the start;"
                 " per_seed: each seed's own difference):\n\n" + pooled.to_markdown(index=False, floatfmt=".3f"))
    for d in args.runs:
        if (Path(d) / "train_log.jsonl").is_file():
            lt = log_table(d)
            text += f"\n\nTraining log of {Path(d).name}:\n\n" + lt.to_markdown(index=False, floatfmt=".3g")
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    if args.png:
        plot_curves(table, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
