"""Success metrics over k attempts per task, with bootstrap confidence intervals over tasks.

Names follow the field:

- ``mean@k``: the success rate averaged over the k attempts of each task, then over tasks (verl's ``mean@N``).
- ``pass@k``: chance that at least one of k attempts succeeds, estimated without bias from n >= k attempts with c
  successes as ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021, as rllm reports it).
- ``pass^k``: chance that all k attempts succeed, ``C(c, k) / C(n, k)`` (tau-bench's reliability metric).

Every metric gets three 95% intervals over *tasks* (attempts of one task are not independent, tasks are):

- a seeded percentile bootstrap that resamples tasks (``_lo``/``_hi``);
- Wilson's score interval (``_wilson_lo``/``_wilson_hi``) and the Clopper–Pearson interval (``_cp_lo``/``_cp_hi``),
  both from scipy's normal and beta quantiles, on n = tasks and x = the sum of the per-task values.

The bootstrap says nothing for small n (20 tasks that all fail give "[0, 0]"); the binomial intervals still do
(0/20 gives Clopper–Pearson [0, 0.168]). They are exact binomial intervals when each task's value is 0 or 1 (k = 1,
or pass@k/pass^k with exactly k attempts); for fractional per-task values they are conservative, since a mean of
values in [0, 1] varies no more than a 0/1 count with the same mean.

Episodes that ended in error (``error`` set) are no results: they are left out of every metric and counted apart.
"""

from __future__ import annotations

from math import comb, sqrt
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


def _check_binomial(x: float, n: int, level: float) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not 0 <= x <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={x}, n={n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion: `successes` out of `n` (may be fractional; see the module docstring).

    Returns (nan, nan) for n = 0.
    """
    from scipy.stats import norm

    _check_binomial(successes, n, level)
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(norm.ppf(1 - (1 - level) / 2))
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson ("exact") interval: beta quantiles at `successes` out of `n`; (nan, nan) for n = 0."""
    from scipy.stats import beta

    _check_binomial(successes, n, level)
    if n == 0:
        return (float("nan"), float("nan"))
    a = 1 - level
    lo = 0.0 if successes <= 0 else float(beta.ppf(a / 2, successes, n - successes + 1))
    hi = 1.0 if successes >= n else float(beta.ppf(1 - a / 2, successes + 1, n - successes))
    return (lo, hi)


def interval_columns(name: str, values: Iterable[float], *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """The three intervals of the mean of per-task `values` in [0, 1], as columns named after metric `name`:
    ``name_lo/_hi`` (bootstrap), ``name_wilson_lo/_hi`` and ``name_cp_lo/_hi``."""
    v = np.asarray(list(values), dtype=float)
    x, n = float(v.sum()), int(v.size)
    x = min(max(x, 0.0), float(n))  # float sums of rates can overshoot n by an ulp
    out = {}
    out[name + "_lo"], out[name + "_hi"] = bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level)
    out[name + "_wilson_lo"], out[name + "_wilson_hi"] = wilson_ci(x, n, level)
    out[name + "_cp_lo"], out[name + "_cp_hi"] = clopper_pearson_ci(x, n, level)
    return out


def results_only(df: pd.DataFrame) -> pd.DataFrame:
    """The episodes that are results: those that did not end in error."""
    return df[df["error"].isna()] if "error" in df.columns else df


def per_task(df: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """One row per task of one configuration: attempts n, successes c, success rate, pass@k, pass^k, mean reward.

    `k` defaults to the smallest number of attempts any task has, so every task is scored on the same k.
    Episodes that ended in error are left out.
    """
    df = results_only(df)
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


METRICS = (("mean@k", "rate"), ("pass@k", "pass@k"), ("pass^k", "pass^k"))
INTERVAL_SUFFIXES = ("_lo", "_hi", "_wilson_lo", "_wilson_hi", "_cp_lo", "_cp_hi")


def compute_columns(df: pd.DataFrame) -> dict:
    """What the episodes cost, over every stored episode (an errored one cost compute too). Column names carry the
    unit and the aggregation: ``tokens_out_total`` is a sum over episodes, ``tokens_out_mean`` a per-episode mean.

    ``wall_time_s_run`` is the run's real wall time: the length of the union of the episodes' [started_at, ended_at]
    spans, i.e. the time at least one episode was running (NaN for records that predate the timestamps).
    ``gen_time_s_*`` is the generation time charged to the episodes (each its share of every batch it was in), so
    ``gen_time_s_total`` is the time spent generating; ``env_time_s_*`` the time inside env reset/step;
    ``wall_time_s_mean`` the mean span of one episode, waiting for its batch included.
    """
    out = {}
    for col in ("env_steps", "tokens_in", "tokens_out"):
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce")
            out[col + "_total"], out[col + "_mean"] = int(v.sum()), float(v.mean())
    for col in ("gen_time_s", "env_time_s"):
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce")
            known = v.notna().all() and len(v) > 0
            out[col + "_total"] = float(v.sum()) if known else float("nan")
            out[col + "_mean"] = float(v.mean()) if known else float("nan")
    if "wall_time_s" in df.columns:
        out["wall_time_s_mean"] = float(pd.to_numeric(df["wall_time_s"], errors="coerce").mean())
    out["wall_time_s_run"] = run_wall_time(df)
    return out


def run_wall_time(df: pd.DataFrame) -> float:
    """Length in seconds of the union of the episodes' [started_at, ended_at] spans; NaN when any span is unknown."""
    if not {"started_at", "ended_at"} <= set(df.columns) or df.empty:
        return float("nan")
    start = pd.to_numeric(df["started_at"], errors="coerce").to_numpy(float)
    end = pd.to_numeric(df["ended_at"], errors="coerce").to_numpy(float)
    if np.isnan(start).any() or np.isnan(end).any():
        return float("nan")
    order = np.argsort(start)
    total, cur_lo, cur_hi = 0.0, start[order[0]], end[order[0]]
    for lo, hi in zip(start[order[1:]], end[order[1:]]):
        if lo > cur_hi:  # a gap: nothing ran (e.g. between a kill and the resume)
            total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        else:
            cur_hi = max(cur_hi, hi)
    return float(total + cur_hi - cur_lo)


def score(df: pd.DataFrame, k: int | None = None, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Metrics of one configuration's episodes (columns as in hero_gym.records.FLAT_FIELDS) as a flat dict.

    Keys "mean@k", "pass@k", "pass^k" (each with the interval columns of :func:`interval_columns`) are computed at
    the k in key "k" over the episodes that did not end in error; "errors" counts the others. A configuration whose
    every episode errored has NaN metrics. Compute columns are those of :func:`compute_columns`.
    """
    ok = results_only(df)
    errors = len(df) - len(ok)
    out: dict = {"tasks": 0, "episodes": len(ok), "errors": errors, "k": k if k is not None else float("nan")}
    # Tool calls beyond the first of a message do not run (one per turn); how many were dropped, in all.
    out["dropped_tool_calls"] = (int(pd.to_numeric(df["dropped_tool_calls"], errors="coerce").fillna(0).sum())
                                 if "dropped_tool_calls" in df else 0)
    if ok.empty:
        for name, _ in METRICS:
            out[name] = float("nan")
            out.update({name + suf: float("nan") for suf in INTERVAL_SUFFIXES})
        for c in ("reward", "turns", "turns_success", "budget_hit"):
            out[c] = float("nan")
        out.update(compute_columns(df))
        return out
    t = per_task(ok, k)
    out["tasks"], out["k"] = len(t), t.attrs["k"]
    for name, col in METRICS:
        out[name] = t[col].mean()
        out.update(interval_columns(name, t[col], n_boot=n_boot, seed=seed))
    succ = ok[ok["success"]]
    out["reward"] = ok["reward"].mean()
    out["turns"] = ok["turns"].mean()
    out["turns_success"] = succ["turns"].mean() if len(succ) else float("nan")
    # Budget hits are scored 0 by the env; reporting how often it happened keeps them from hiding in the success rate.
    out["budget_hit"] = (ok["termination_reason"] == BUDGET_REASON).mean()
    out.update(compute_columns(df))
    return out


def name_k_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Name the metric columns the way papers do (mean@4, pass@4, pass^4) when every row has the same k."""
    ks = table["k"].dropna().unique()
    if len(ks) == 1 and table["k"].notna().all():
        k = int(ks[0])
        table = table.rename(columns=lambda c: c.replace("@k", f"@{k}").replace("^k", f"^{k}"))
    return table


def summarize(df: pd.DataFrame, k: int | None = None, *, n_boot: int = 2000, seed: int = 0,
              by: list[str] | None = None) -> pd.DataFrame:
    """One row of metrics per configuration (env, split, method, policy, train_budget, max_turns by default).

    Metric columns are named mean@4, pass@4, pass^4 (with interval columns) when every row has the same k, else
    mean@k, pass@k, pass^k beside the "k" column.

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
    return name_k_columns(pd.DataFrame(rows))


def _interval(lo: float, hi: float) -> str:
    return "-" if np.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def _cell(m: float, lo: float, hi: float) -> str:
    return "-" if np.isnan(m) else f"{m:.3f} {_interval(lo, hi)}"


INTERVAL_LEGEND = ("95% intervals over tasks: bootstrap [lo, hi] beside the value; Wilson and Clopper-Pearson "
                   "(exact binomial when each task scores 0 or 1, conservative for fractions).")


def format_summary(summary: pd.DataFrame) -> str:
    """A compact Markdown table of a summary (value with its bootstrap interval in one cell, the Wilson and
    Clopper-Pearson intervals in the next ones, rounded), followed by a legend and any warnings."""
    cols = [c for c in GROUP_KEYS if c in summary.columns and not (summary[c] == "-").all()]
    out = summary[cols + ["tasks", "episodes", "errors"]].copy()
    metrics = [c for c in summary.columns if c + "_cp_lo" in summary.columns]
    if "k" in summary.columns and "mean@k" in summary.columns:  # rows with different (or unknown) k
        out["k"] = summary["k"]
    degenerate = False
    for metric in metrics:
        lo, hi = summary[metric + "_lo"], summary[metric + "_hi"]
        out[metric] = [_cell(m, a, b) for m, a, b in zip(summary[metric], lo, hi)]
        for suffix, title in (("_wilson", " Wilson"), ("_cp", " C-P")):
            out[metric + title] = [_interval(a, b) for a, b in
                                   zip(summary[metric + suffix + "_lo"], summary[metric + suffix + "_hi"])]
        degenerate |= bool(((lo == hi) & (summary["tasks"] > 1)).any())
    for c in ("reward", "turns", "turns_success", "budget_hit", "tokens_out_mean", "gen_time_s_mean",
              "wall_time_s_run"):
        if c in summary.columns:
            out[c] = summary[c].astype(float).round(3)
    if "dropped_tool_calls" in summary and summary["dropped_tool_calls"].any():
        out["dropped_calls"] = summary["dropped_tool_calls"]
    notes = [INTERVAL_LEGEND]
    if degenerate:
        notes.append("A bootstrap interval of zero width means every task scored the same; it is no evidence of "
                     "certainty: read the Wilson/Clopper-Pearson intervals.")
    if int(summary["errors"].sum()):
        notes.append(f"{int(summary['errors'].sum())} episode(s) ended in error: they are not results and are left "
                     "out of every metric; rerun the same command to retry them.")
    return out.to_markdown(index=False) + "\n\n" + "\n".join(notes)
