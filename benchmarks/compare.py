"""Head-to-head comparison of runs on the same tasks and attempts, with paired tests and compute columns.

Runs are compared on the episodes they all have, keyed by (task, attempt). With the harness's seeding, the same
(seed, task, attempt) gives the same user/env randomness in every run, so episodes pair up and paired tests apply:

- a paired bootstrap (over tasks) of the difference in success rate against the baseline run;
- an exact sign test over *tasks* (``mcnemar_p_tasks``): a task is a win when its success rate over the paired
  attempts is higher than the baseline's, a loss when lower; ties drop out. Attempts of one task are not
  independent, so the episodes are not the unit; with k = 1 this is exactly McNemar's exact test on the episodes.

Episodes that ended in error are no results and are not paired; the ``errors`` column counts them per run.
Compute columns (see :func:`hero_gym.benchmarks.stats.compute_columns`: ``tokens_out_total``, ``tokens_out_mean``,
``gen_time_s_total``, ``wall_time_s_run``, ...) cover the compared episodes and let a reader check whether a gain
was bought with more compute.
"""

from __future__ import annotations

import os
from math import comb
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from hero_gym.benchmarks.stats import name_k_columns, bootstrap_ci, compute_columns, results_only, score
from hero_gym.records import load_frame

PAIR_KEYS = ["task", "attempt"]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (only A succeeded) and c (only B succeeded).

    Under the null each discordant pair is a fair coin, so min(b, c) is Binomial(b + c, 1/2); the p-value doubles
    its lower tail (capped at 1). No discordant pairs gives p = 1.
    """
    for name, v in (("b", b), ("c", c)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def _one_config(df: pd.DataFrame, label: str) -> None:
    """A compared run must hold one env/split (pairing across envs means nothing)."""
    for col in ("env", "split"):
        vals = df[col].astype(object).where(df[col].notna(), None).unique()
        if len(vals) > 1:
            raise ValueError(f"run {label} mixes several {col} values {list(vals)}; compare one {col} at a time")


def compare(run_dirs: Sequence[str | os.PathLike], *, k: int | None = None, baseline: int = 0,
            n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per run on the episodes common to all runs; paired statistics against run number `baseline`.

    Columns: run, policy, method, train_budget, tasks, episodes, errors (episodes of the run that ended in error,
    not compared), k, mean@k with its bootstrap (_lo/_hi), Wilson and Clopper-Pearson intervals, pass@k, pass^k,
    turns, turns_success, budget_hit, then diff/diff_lo/diff_hi (success-rate difference vs the baseline with a
    paired bootstrap 95% CI over tasks), wins_tasks/losses_tasks (tasks this run solved more/less often than the
    baseline), mcnemar_p_tasks (exact sign test over those tasks), then the compute columns of
    :func:`hero_gym.benchmarks.stats.compute_columns`. ``df.attrs["notes"]`` lists what the reader must know
    (intersection used, errored episodes, seeds that differ).
    """
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two runs")
    if not 0 <= baseline < len(run_dirs):
        raise ValueError(f"baseline must index one of the {len(run_dirs)} runs, got {baseline}")
    frames = [load_frame([d]) for d in run_dirs]
    labels = [f["run"].iat[0] for f in frames]
    if len(set(labels)) < len(labels):  # same names: label by the paths given instead
        labels = [str(d) for d in run_dirs]
        for f, lab in zip(frames, labels):
            f["run"] = lab
    for f, lab in zip(frames, labels):
        _one_config(f, lab)
    envs = {(f["env"].iat[0], f["split"].iat[0]) for f in frames}
    if len(envs) > 1:
        raise ValueError(f"runs are on different env/split pairs {sorted(map(str, envs))}; compare like with like")

    notes = []
    n_errors = []
    for i, (f, lab) in enumerate(zip(frames, labels)):
        ok = results_only(f)
        n_errors.append(len(f) - len(ok))
        if n_errors[-1]:
            notes.append(f"{lab}: {n_errors[-1]} episode(s) ended in error; they are no results and are not compared")
        frames[i] = ok
    keysets = [set(map(tuple, f[PAIR_KEYS].to_numpy().tolist())) for f in frames]
    common = set.intersection(*keysets)
    if not common:
        raise ValueError("the runs share no (task, attempt) episodes; nothing can be compared")
    for lab, ks in zip(labels, keysets):
        if ks != common:
            notes.append(f"compared on the {len(common)} (task, attempt) episodes all runs share; "
                         f"{lab} has {len(ks) - len(common)} more")
    idx = pd.MultiIndex.from_tuples(sorted(common), names=PAIR_KEYS)
    frames = [f.set_index(PAIR_KEYS).loc[idx].reset_index() for f in frames]

    base = frames[baseline]
    rows = []
    for i, (f, lab) in enumerate(zip(frames, labels)):
        s = score(f, k, n_boot=n_boot, seed=seed)
        row = {"run": lab, "policy": f["policy"].iat[0], "method": f["method"].iat[0],
               "train_budget": f["train_budget"].iat[0]}
        row.update({key: s[key] for key in ("tasks", "episodes")})
        row["errors"] = n_errors[i]
        row.update({key: s[key] for key in ("k", "mean@k", "mean@k_lo", "mean@k_hi", "mean@k_wilson_lo",
                                            "mean@k_wilson_hi", "mean@k_cp_lo", "mean@k_cp_hi", "pass@k", "pass^k",
                                            "turns", "turns_success", "budget_hit")})
        a, b = f["success"].to_numpy(bool), base["success"].to_numpy(bool)
        if i == baseline:
            row.update(diff=0.0, diff_lo=0.0, diff_hi=0.0, wins_tasks=0, losses_tasks=0, mcnemar_p_tasks=1.0)
        else:
            seeds_a, seeds_b = f["seed"].to_numpy(object), base["seed"].to_numpy(object)
            n_diff = int(sum(x != y for x, y in zip(seeds_a, seeds_b)))
            if n_diff:
                notes.append(f"{lab}: {n_diff} paired episode(s) ran with other seeds than the baseline's; "
                             "pairs matched by attempt index")
            per_task = pd.DataFrame({"task": f["task"], "d": a.astype(float) - b.astype(float)})
            d = per_task.groupby("task")["d"].mean()
            row["diff"] = float(d.mean())
            row["diff_lo"], row["diff_hi"] = bootstrap_ci(d, n_boot=n_boot, seed=seed)
            row["wins_tasks"], row["losses_tasks"] = int((d > 0).sum()), int((d < 0).sum())
            row["mcnemar_p_tasks"] = mcnemar_exact(row["wins_tasks"], row["losses_tasks"])
        row.update(compute_columns(f))
        rows.append(row)
    out = name_k_columns(pd.DataFrame(rows))
    if out["wall_time_s_run"].isna().any():
        notes.append("wall_time_s_run is NaN for runs whose records predate per-episode timestamps")
    out.attrs["notes"] = notes
    out.attrs["baseline"] = labels[baseline]
    out.attrs["env"], out.attrs["split"] = next(iter(envs))
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table (3 decimals) followed by its notes."""
    text = table.round(3).to_markdown(index=False)
    head = f"Baseline: {table.attrs.get('baseline')} ({table.attrs.get('env')}, split {table.attrs.get('split')})"
    notes = "".join(f"\n- {n}" for n in table.attrs.get("notes", []))
    return f"{head}\n\n{text}\n{notes}\n" if notes else f"{head}\n\n{text}\n"


def write_tables(table: pd.DataFrame, *, csv: str | os.PathLike | None = None,
                 md: str | os.PathLike | None = None) -> None:
    """Write the comparison as CSV and/or Markdown."""
    if csv:
        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
    if md:
        Path(md).parent.mkdir(parents=True, exist_ok=True)
        Path(md).write_text(to_markdown(table))


__all__ = ["compare", "mcnemar_exact", "to_markdown", "write_tables"]
