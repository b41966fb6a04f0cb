"""Figures regenerated from stored run records: the turn-budget sweep and a per-task success heat map.

Both functions read run directories (hero_gym.records), save the figure in the format its suffix names (PNG, or PDF
and SVG for papers) and return the matplotlib Figure so callers (and tests) can inspect axes, labels and legends.
Titles name the benchmark (from the registry), not the env id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hero_gym.extras import require_extra

require_extra("plots", "matplotlib")

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hero_gym.benchmarks.stats import bootstrap_ci, per_task  # noqa: E402
from hero_gym.records import load_frame  # noqa: E402


FORMATS = (".png", ".pdf", ".svg")


def _save(fig, out: str | os.PathLike) -> None:
    if Path(out).suffix.lower() not in FORMATS:
        raise ValueError(f"a figure is written as {', '.join(FORMATS)}; got {str(out)!r}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")


def benchmark_name(env_id: str) -> str:
    """A paper-style name for an env id: the benchmark part of its registry description ("TauBench v1 retail",
    "WebShop, 1,000 products"); an unregistered id stays as it is."""
    from hero_gym.registry import ENV_SPECS

    spec = ENV_SPECS.get(env_id)
    if spec is None:
        return env_id
    head = spec.description.split(":")[0].split(" (")[0]
    return ", ".join(head.split(", ")[:2]).strip()


def _env_title(df: pd.DataFrame) -> str:
    envs = sorted({f"{benchmark_name(e)} ({s} split)" for e, s in zip(df["env"], df["split"].astype(str))})
    return ", ".join(envs) if len(envs) <= 2 else f"{len(envs)} benchmarks/splits"


BUDGETS = {"train": ("train_budget", "training turn budget (max agent turns per training episode)"),
           "eval": ("max_turns", "evaluation turn budget (max agent turns per evaluated episode)")}


def sweep_budget(df: pd.DataFrame, budget: str = "auto") -> str:
    """Which budget a sweep plots: "train" (the checkpoints' training turn budget) or "eval" (the evaluation turn
    budget, for plain `eval` runs at several --max-turns). "auto" takes "train" when every record has one, "eval"
    when none has."""
    if budget not in ("auto", *BUDGETS):
        raise ValueError(f"budget must be auto, train or eval, got {budget!r}")
    missing = df["train_budget"].isna()
    if budget == "auto":
        if missing.all():
            return "eval"
        budget = "train"
    if budget == "train" and missing.any():
        runs = sorted(df.loc[missing, "run"].unique())
        raise ValueError(f"run(s) {runs} have episodes without train_budget; a training-budget sweep needs it on every "
                         "record (plot the evaluation budget with --budget eval)")
    return budget


def budget_sweep_table(df: pd.DataFrame, *, k: int | None = None, n_boot: int = 2000, seed: int = 0,
                       budget: str = "auto") -> pd.DataFrame:
    """Per (method, budget): mean@k with bootstrap CI, mean turns (all episodes) and number of tasks. The budget
    column is named for the budget plotted (``train_budget`` or ``max_turns``, see :func:`sweep_budget`)."""
    col = BUDGETS[sweep_budget(df, budget)][0]
    pairs = sorted({f"{e} ({s})" for e, s in zip(df["env"], df["split"].astype(str))})
    if len(pairs) > 1:
        raise ValueError(f"a budget sweep plots one env/split, got {pairs}; plot each separately")
    method = df["method"].astype(object).where(df["method"].notna(), df["policy"])  # untrained baselines: by policy
    df = df.assign(method=method, **{col: df[col].astype(int)})
    rows = []
    for (m, b), g in df.groupby(["method", col], sort=True):
        t = per_task(g, k)
        lo, hi = bootstrap_ci(t["rate"], n_boot=n_boot, seed=seed)
        rows.append({"method": m, col: b, "k": t.attrs["k"], "success": t["rate"].mean(), "lo": lo,
                     "hi": hi, "turns": g["turns"].mean(), "tasks": len(t)})
    return pd.DataFrame(rows)


def plot_budget_sweep(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, *, k: int | None = None,
                      n_boot: int = 2000, seed: int = 0, budget: str = "auto"):
    """Success (mean@k, 95% bootstrap band) and mean turns against a turn budget, one line per method; the x axis
    says which budget (:func:`sweep_budget`)."""
    df = load_frame(run_dirs)
    which = sweep_budget(df, budget)
    col, xlabel = BUDGETS[which]
    table = budget_sweep_table(df, k=k, n_boot=n_boot, seed=seed, budget=which)
    ks = sorted(table["k"].unique())
    klabel = f"mean@{ks[0]}" if len(ks) == 1 else "mean@k"
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    # Runs with train_budget 0 are the start point (the warm start, no turn-budgeted training): a horizontal
    # line, not a point at x=0.
    ref, table = table[table[col] == 0], table[table[col] != 0]
    budgets = sorted(table[col].unique()) or [0]
    span = (max(budgets) - min(budgets)) or 1
    methods = sorted(table["method"].unique())
    for i, (m, g) in enumerate(table.groupby("method", sort=True)):
        color, marker = f"C{i % 10}", "osD^vP*X"[i % 8]
        # Small per-method offsets and distinct markers keep coinciding lines visible.
        x = g[col] + (i - (len(methods) - 1) / 2) * 0.02 * span
        ax_s.plot(x, g["success"], marker=marker, color=color, label=str(m))
        ax_s.fill_between(x, g["lo"], g["hi"], color=color, alpha=0.15, linewidth=0)
        ax_t.plot(x, g["turns"], marker=marker, color=color, label=str(m))
    for j, (_, r) in enumerate(ref.iterrows()):
        color = f"C{(len(methods) + j) % 10}"
        ax_s.axhline(r["success"], color=color, linestyle="--", label=f"{r['method']} (start point, train_budget 0)")
        ax_s.axhspan(r["lo"], r["hi"], color=color, alpha=0.1, linewidth=0)
        ax_t.axhline(r["turns"], color=color, linestyle="--", label=f"{r['method']} (start point, train_budget 0)")
    for ax in (ax_s, ax_t):
        ax.set_xlabel(xlabel)
        ax.set_xticks(budgets)
        ax.grid(alpha=0.3)
    ax_s.legend(title="method")  # one legend: both panels share the methods and colours
    ax_s.set_ylabel(f"success, {klabel} (fraction of episodes)")
    ax_s.set_ylim(-0.02, 1.02)
    name = "training" if which == "train" else "evaluation"
    ax_s.set_title(f"Success vs {name} budget (band: 95% bootstrap CI over tasks)")
    ax_t.set_ylabel("mean turns per evaluation episode (turns)")
    ax_t.set_ylim(bottom=0)
    ax_t.set_title(f"Turns used vs {name} budget")
    note = ""
    if which == "train":
        eval_turns = sorted(df["max_turns"].dropna().astype(int).unique())
        note = f"; evaluation turn budget {', '.join(map(str, eval_turns))} turns" if eval_turns else ""
    fig.suptitle(_env_title(df) + note + "\n" + separation_note(table, ref, col=col))
    fig.tight_layout()
    _save(fig, out)
    return fig


def separation_note(table: pd.DataFrame, ref: pd.DataFrame | None = None, col: str = "train_budget") -> str:
    """One line saying whether the methods' success intervals are separated at any budget (and from the
    reference), so a reader of a plot whose lines coincide knows it."""
    pairs = []
    for b, g in table.groupby(col):
        rows = list(g.itertuples()) + (list(ref.itertuples()) if ref is not None else [])
        pairs += [f"{x.method} vs {y.method} at budget {b}" for i, x in enumerate(rows) for y in rows[i + 1:]
                  if x.hi < y.lo or y.hi < x.lo]
    if not pairs:
        return "no two lines are separated: every pair of 95% intervals overlaps at every budget"
    return "separated (non-overlapping 95% intervals): " + "; ".join(pairs[:4]) + (" ..." if len(pairs) > 4 else "")


def plot_task_heatmap(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike):
    """Per-task success rate (fraction of attempts solved), one row per run, one column per task.

    Tasks are sorted by difficulty (mean success over the runs, easiest first; ties by task index), so a few hundred
    columns still read as regions where runs differ. Up to 40 tasks every column is labelled with its index; beyond
    that the axis is the difficulty rank, with a few ticks.
    """
    df = load_frame(run_dirs)
    rate = df.groupby(["run", "task"])["success"].mean().unstack("task")
    order = [r for r in dict.fromkeys(df["run"])]  # keep the order the runs were given in
    rate = rate.loc[order]
    ease = rate.mean(axis=0)  # over the runs that attempted the task
    cols = sorted(rate.columns, key=lambda t: (-ease[t], t))
    rate = rate[cols]
    n_tasks = rate.shape[1]
    width = min(3 + 0.28 * n_tasks, 12)
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.45 * len(rate)))
    masked = np.ma.masked_invalid(rate.to_numpy(dtype=float))  # tasks a run did not attempt stay blank
    im = ax.imshow(masked, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(rate)), labels=[str(r) for r in rate.index])
    if n_tasks <= 40:
        ax.set_xticks(range(n_tasks), labels=[str(t) for t in rate.columns], rotation=90 if n_tasks > 20 else 0)
        ax.set_xlabel("task index (sorted by mean success, easiest first)")
    else:
        ax.set_xlabel(f"{n_tasks} tasks sorted by mean success over the runs (easiest first)")
    ax.set_ylabel("run")
    ax.set_title(f"Per-task success rate: {_env_title(df)}")
    cbar = fig.colorbar(im, ax=ax, pad=0.01)
    cbar.set_label("success rate (fraction of attempts)")
    fig.tight_layout()
    _save(fig, out)
    return fig


# ----- credit assignment: per-token teacher-student divergence of a training step --------------------------------
CREDIT_RGB = (220 / 255, 38 / 255, 38 / 255)  # the viewer's token shade, so the PNG and the HTML page agree


def _token_text(tok: str) -> str:
    """A token as one printable run of characters (newlines and tabs shown as arrows, control characters as ·)."""
    tok = tok.replace("\n", "↵").replace("\t", "→")
    return "".join(c if c.isprintable() else "·" for c in tok) or "·"


def plot_credit(run_dir: str | os.PathLike, step: int, out_png: str | os.PathLike, *, max_rollouts: int = 4,
                chars_per_line: int = 110, max_lines: int = 160):
    """The seed paper's credit-assignment figure for one training step: every action token of each sampled rollout's
    distilled turns shaded by its loss term (the teacher-student divergence), darkest = the step's largest value.

    Reads OUT_DIR/credit/step_NNNNN.jsonl (written by the distillation trainers, see agents/credit_log.py).
    """
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.patches import Rectangle

    from hero_gym.viewer.credit import load_credit

    if max_rollouts < 1:
        raise ValueError(f"max_rollouts must be positive, got {max_rollouts}")
    rolls = load_credit(run_dir, step)[step][:max_rollouts]
    scale = max((v for r in rolls for t in r["turns"] for v in t.get("loss") or []), default=0.0) or 1.0
    # Layout in character cells: a header line per distilled turn, then its tokens wrapped at chars_per_line.
    items, y, cut_short = [], 0, False  # (kind, y, payload)
    for k, r in enumerate(rolls):
        for t in r["turns"]:
            if not t.get("distilled"):
                continue
            if y >= max_lines:
                cut_short = True
                break
            verdict = "success" if r["success"] else "failure"
            items.append(("head", y, f"rollout {k + 1} · task {r['task']} · {verdict}, reward {r['reward']:.2f} · "
                                     f"turn {t['turn'] + 1}{' (invalid)' if t.get('invalid') else ''}"))
            y, x = y + 1, 0
            for tok, v in zip(t["tokens"], t["loss"]):
                text = _token_text(tok)
                if x + len(text) > chars_per_line and x > 0:
                    y, x = y + 1, 0
                items.append(("tok", y, (x, text, v)))
                x += len(text)
            y += 1.4
    if not items:
        raise ValueError(f"step {step} of {run_dir} has no distilled turn in its credit record")
    char_in, line_in = 0.1, 0.22
    fig = plt.figure(figsize=(chars_per_line * char_in + 0.4, y * line_in + 1.4))
    ax = fig.add_axes((0.02, 1.0 / (y * line_in + 1.4), 0.96, 1 - 1.3 / (y * line_in + 1.4)))
    ax.set_xlim(0, chars_per_line)
    ax.set_ylim(y, -0.2)
    ax.axis("off")
    font = char_in * 72 / 0.602  # DejaVu Sans Mono advances 0.602 em per character
    for kind, row, payload in items:
        if kind == "head":
            ax.text(0, row + 0.5, payload, va="center", fontsize=font * 0.9, weight="bold", family="DejaVu Sans")
            continue
        x, text, v = payload
        ax.add_patch(Rectangle((x, row + 0.05), len(text), 0.9, facecolor=(*CREDIT_RGB, min(1.0, max(0.0, v / scale))),
                               edgecolor="none"))
        ax.text(x, row + 0.5, text, va="center", ha="left", fontsize=font, family="DejaVu Sans Mono")
    cmap = LinearSegmentedColormap.from_list("credit", [(*CREDIT_RGB, 0.0), (*CREDIT_RGB, 1.0)])
    cax = fig.add_axes((0.25, 0.25 / (y * line_in + 1.4), 0.5, 0.2 / (y * line_in + 1.4)))
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(0, scale), cmap=cmap), cax=cax, orientation="horizontal",
                       format="%.2g")
    r0 = rolls[0]
    bar.set_label(f"per-token loss term: teacher-student divergence (nats; alpha {r0.get('alpha')}, top-K "
                  f"{r0.get('topk') or 'full'})")
    more = " (cut: more turns in the record)" if cut_short else ""
    ax.set_title(f"{r0.get('method')}, step {step}: action tokens shaded by the hindsight teacher's disagreement{more}",
                 loc="left", fontsize=font)
    _save(fig, out_png)
    return fig
