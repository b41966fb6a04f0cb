"""Speed of TauEnv's reset + gold replay + reward against an upstream-style baseline doing the same work.

Per task, both sides: reset, replay the gold tool calls as the agent's actions, send the required outputs to the
user, and compute the reward. The baseline does what upstream tau-bench v1 does: re-read the JSON files from disk
at reset, replay the tool calls on the loaded dicts, then for the reward hash the whole database
(``sha256(str(to_hashable(db)))``), reload it from disk, replay the gold calls and hash again. TauEnv loads the data
once per process, copies records on access and compares only touched records against a cached gold state.

Both sides use the same tool functions, so the difference is the environment's own work. The first TauEnv pass
over a split fills the gold-state cache; it is reported separately ("cold") from later passes ("warm").

Run: ``HERO_GYM_DATA=/work/shared/data OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.bench_tau [--reps 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from typing import Any

from hero_gym.actions import format_tool_call
from hero_gym.data import path
from hero_gym.envs.tau.db import _SOURCES
from hero_gym.envs.tau.env import TauEnv, domain_tools
from hero_gym.envs.tau.reward import TERMINATE_TOOLS, outputs_said, run_tool
from hero_gym.envs.tau.tasks import Task


class _SilentUser:
    """A user that answers nothing and never stops (the benchmark ends episodes itself)."""

    def reset(self, task: Any, seed: int | None = None, **_: Any) -> str:
        return "Hi, I need help."

    def step(self, message: str) -> str:
        return "ok"


# ------------------------------------------------------------------------------------------ upstream-style side
def to_hashable(value: Any) -> Any:
    """Upstream's hashing normal form (our own code): sorted key/value tuples for dicts, tuples for lists."""
    if isinstance(value, dict):
        return tuple(sorted((k, to_hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(to_hashable(v) for v in value)
    if isinstance(value, set):
        return tuple(sorted(to_hashable(v) for v in value))
    return value


def full_db_hash(db: dict) -> str:
    return hashlib.sha256(str(to_hashable(db)).encode()).hexdigest()


def load_from_disk(version: str, domain: str) -> dict[str, dict]:
    """A fresh database read from the JSON files, as upstream's ``load_data`` does at every reset."""
    db: dict[str, dict] = {}
    cache: dict[str, Any] = {}
    for table, (dataset, relpath, key) in _SOURCES[(version, domain)].items():
        if relpath not in cache:
            with open(path(dataset, relpath, verify=False)) as f:
                cache[relpath] = json.load(f)
        data = cache[relpath]
        db[table] = data if key is None else data[key]
    return db


def upstream_style_episode(task: Task, tools: Any, actions: list[dict], said: list[str]) -> float:
    """Reset (reload), run `actions`, then upstream's reward: hash, reload, replay gold, hash, outputs check."""
    db = load_from_disk(task.version, task.domain)
    for a in actions:
        run_tool(db, tools, a["name"], a["kwargs"])
    data_hash = full_db_hash(db)
    gold = load_from_disk(task.version, task.domain)
    for a in task.actions:
        if a["name"] not in TERMINATE_TOOLS:
            run_tool(gold, tools, a["name"], a["kwargs"])
    reward = 1.0 if full_db_hash(gold) == data_hash else 0.0
    if task.outputs and not all(outputs_said(task.outputs, said).values()):
        reward = 0.0
    return reward


# ------------------------------------------------------------------------------------------------ TauEnv side
def env_episode(env: TauEnv, index: int) -> float:
    env.reset(options={"task_index": index})
    task = env.task
    for a in task.actions:
        if a["name"] not in TERMINATE_TOOLS:
            env.step(format_tool_call(a["name"], a["kwargs"]))
    env.step("Done. " + " ".join(task.outputs))
    reward, _ = env.compute_reward()
    return reward


def _timed(fn) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process): CPU time is what the shared machine's load blurs least."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def bench_split(version: str, domain: str, split: str, reps: int) -> dict:
    env = TauEnv(domain, version, split, max_turns=100, user=_SilentUser())
    tools, _ = domain_tools(domain, version)
    tasks = env.tasks
    n = len(tasks)
    cold, cold_wall, cold_cpu = _timed(lambda: [env_episode(env, i) for i in range(n)])
    warm = [_timed(lambda: [env_episode(env, i) for i in range(n)]) for _ in range(reps)]

    def baseline_pass():
        return [
            upstream_style_episode(
                t, tools, [a for a in t.actions if a["name"] not in TERMINATE_TOOLS], ["Done. " + " ".join(t.outputs)]
            )
            for t in tasks
        ]

    base = [_timed(baseline_pass) for _ in range(reps)]
    ms = lambda runs, k: statistics.median(r[k] for r in runs) * 1000 / n  # noqa: E731
    row = {
        "split": f"{version} {domain} {split}",
        "tasks": n,
        "env_cold_ms": cold_wall * 1000 / n,
        "env_cold_cpu_ms": cold_cpu * 1000 / n,
        "env_warm_ms": ms(warm, 1),
        "env_warm_cpu_ms": ms(warm, 2),
        "baseline_ms": ms(base, 1),
        "baseline_cpu_ms": ms(base, 2),
        "env_reward_mean": sum(cold) / n,
        "baseline_reward_mean": sum(base[-1][0]) / n,
    }
    row["speedup_warm"] = row["baseline_ms"] / row["env_warm_ms"]
    row["speedup_warm_cpu"] = row["baseline_cpu_ms"] / row["env_warm_cpu_ms"]
    row["speedup_cold"] = row["baseline_ms"] / row["env_cold_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3, help="timed passes per side (median reported)")
    p.add_argument("--splits", default="v1/retail/test,v1/airline/test", help="comma-separated version/domain/split")
    args = p.parse_args(argv)
    rows = [bench_split(*s.split("/"), reps=args.reps) for s in args.splits.split(",")]
    print(
        "| split | tasks | TauEnv warm ms/task (CPU) | TauEnv cold ms/task (CPU) | upstream-style ms/task (CPU) "
        "| speed-up warm wall (CPU) | speed-up cold | reward env / baseline |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['split']} | {r['tasks']} | {r['env_warm_ms']:.2f} ({r['env_warm_cpu_ms']:.2f}) "
            f"| {r['env_cold_ms']:.2f} ({r['env_cold_cpu_ms']:.2f}) | {r['baseline_ms']:.1f} ({r['baseline_cpu_ms']:.1f}) "
            f"| {r['speedup_warm']:.0f}x ({r['speedup_warm_cpu']:.0f}x) | {r['speedup_cold']:.0f}x "
            f"| {r['env_reward_mean']:.3f} / {r['baseline_reward_mean']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
