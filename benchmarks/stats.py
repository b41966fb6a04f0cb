"""Success metrics over k attempts per task, with bootstrap confidence intervals over tasks.

Names follow the field:

- ``mean@k``: the success rate averaged over the k attempts of each task, then over tasks (verl's ``mean@N``).
- ``pass@k``: chance that at least one of k attempts succeeds, estimated without bias from n >= k attempts with c
  successes as ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021, as rllm reports it).
- ``pass^k``: chance that all k attempts succeed, ``C(c, k) / C(n, k)`` (tau-bench's reliability metric).

Intervals are percentile bootstraps that resample *tasks* (attempts of one task are not independent), seeded.
"""

from __future__ import annotations

from math import comb
from typing import Callable, Iterable

import numpy as np
import pandas as pd

# Rows of one summary: a run configuration. `run` is not part of it, so shards of one configuration pool together.
GROUP_KEYS = ["env", "split", "method", "policy", "train_budget", "max_turns"]
BUDGET_REASON = "turn_budget"


def _check_nck(n: int, c: int, k: int) -> None:
    for name, v in (("n", n), ("c", c), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {v!r}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n (k attempts drawn from the n made), got n={n}, k={k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n attempts with c successes: 1 - C(n-c, k) / C(n, k)."""
    _check_nck(n, c, k)
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k (all of k attempts succeed) from n attempts with c successes: C(c, k) / C(n, k)."""
    _check_nck(n, c, k)
    return comb(c, k) / comb(n, k)


def bootstrap_ci(
    values: Iterable[float], stat: Callable[[np.ndarray], np.ndarray] | None = None, *, n_boot: int = 2000,
    seed: int = 0, level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat` (default: the mean) over `values`, one value per task.

    `stat` receives a (n_boot, n_tasks) array of resampled values and returns n_boot statistics.
    Returns (nan, nan) for an empty input, (x, x) for a single task (no spread can be estimated).
    """
    v = np.asarray(list(values), dtype=float)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if v.size == 0:
        return (float("nan"), float("nan"))
    stat = stat or (lambda a: a.mean(axis=1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boots = np.asarray(stat(v[idx]), dtype=float)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def per_task(df: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """One row per task of one configuration: attempts n, successes c, success rate, pass@k, pass^k, mean reward.

    `k` defaults to the smallest number of attempts any task has, so every task is scored on the same k.
    """
    if df.empty:
        raise ValueError("no episodes to score")
    g = df.groupby("task", sort=True)
    t = pd.DataFrame({"n": g["success"].size(), "c": g["success"].sum().astype(int),
                      "reward": g["reward"].mean(), "turns": g["turns"].mean()})
    k = int(t["n"].min()) if k is None else int(k)
    if (t["n"] < k).any():
        short = t.index[t["n"] < k].tolist()
        raise ValueError(f"k={k} but task(s) {short[:10]} have fewer attempts ({int(t['n'].min())} at least)")
    t["rate"] = t["c"] / t["n"]
    t["pass@k"] = [pass_at_k(int(n), int(c), k) for n, c in zip(t["n"], t["c"])]
    t["pass^k"] = [pass_hat_k(int(n), int(c), k) for n, c in zip(t["n"], t["c"])]
    t.attrs["k"] = k
    return t


def score(df: pd.DataFrame, k: int | None = None, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Metrics of one configuration's episodes (columns as in hero_gym.records.FLAT_FIELDS) as a flat dict.

    Keys "mean@k", "pass@k", "pass^k" (each with "_lo"/"_hi" CI bounds) are computed at the k in key "k".
    """
    t = per_task(df, k)
    k = t.attrs["k"]
    succ = df[df["success"]]
    out = {"tasks": len(t), "episodes": len(df), "k": k}
    for name, col in (("mean@k", "rate"), ("pass@k", "pass@k"), ("pass^k", "pass^k")):
        out[name] = t[col].mean()
        out[name + "_lo"], out[name + "_hi"] = bootstrap_ci(t[col], n_boot=n_boot, seed=seed)
    out["reward"] = df["reward"].mean()
    out["turns"] = df["turns"].mean()
    out["turns_success"] = succ["turns"].mean() if len(succ) else float("nan")
    # Budget hits are scored 0 by the env; reporting how often it happened keeps them from hiding in the success rate.
    out["budget_hit"] = (df["termination_reason"] == BUDGET_REASON).mean()
    out["errors"] = int(df["error"].notna().sum())
    # Tool calls beyond the first of a message do not run (one per turn); how many were dropped, in all.
    out["dropped_tool_calls"] = int(df["dropped_tool_calls"].sum()) if "dropped_tool_calls" in df else 0
    out["env_steps"] = df["env_steps"].mean()
    out["tokens_out"] = df["tokens_out"].mean()
    out["wall_time_s"] = df["wall_time_s"].mean()
    return out


def summarize(df: pd.DataFrame, k: int | None = None, *, n_boot: int = 2000, seed: int = 0,
              by: list[str] | None = None) -> pd.DataFrame:
    """One row of metrics per configuration (env, split, method, policy, train_budget, max_turns by default).

    Metric columns are named mean@4, pass@4, pass^4 (with _lo/_hi) when every row has the same k, else mean@k,
    pass@k, pass^k beside the "k" column.

    `df` is hero_gym.records.load_frame(run_dirs). Missing method/train_budget appear as "-" in the keys.
    """
    if df.empty:
        raise ValueError("no episodes to summarize")
    by = list(by or GROUP_KEYS)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise ValueError(f"cannot group by missing column(s) {missing}")
    keyed = df.copy()
    for c in by:
        keyed[c] = keyed[c].astype(object).where(keyed[c].notna(), "-")
    rows = []
    for key, g in keyed.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **score(g, k, n_boot=n_boot, seed=seed)})
    out = pd.DataFrame(rows)
    ks = out["k"].unique()
    if len(ks) == 1:  # one k for all rows: name the columns the way papers do (mean@4, pass@4, pass^4)
        out = out.rename(columns=lambda c: c.replace("@k", f"@{ks[0]}").replace("^k", f"^{ks[0]}"))
    return out


def format_summary(summary: pd.DataFrame) -> str:
    """A compact Markdown table of a summary: metric with its CI in one cell, rounded."""
    cols = [c for c in GROUP_KEYS if c in summary.columns and not (summary[c] == "-").all()]
    out = summary[cols + ["tasks", "episodes"]].copy()
    metrics = [c for c in summary.columns if c + "_lo" in summary.columns and c + "_hi" in summary.columns]
    if "k" in summary.columns and summary["k"].nunique() > 1:
        out["k"] = summary["k"]
    for metric in metrics:
        lo, hi = summary[metric + "_lo"], summary[metric + "_hi"]
        out[metric] = [f"{m:.3f} [{a:.3f}, {b:.3f}]" for m, a, b in zip(summary[metric], lo, hi)]
    for c in ("reward", "turns", "turns_success", "budget_hit", "tokens_out", "wall_time_s"):
        out[c] = summary[c].round(3)
    out["errors"] = summary["errors"]
    if "dropped_tool_calls" in summary and summary["dropped_tool_calls"].any():
        out["dropped_calls"] = summary["dropped_tool_calls"]
    return out.to_markdown(index=False)
