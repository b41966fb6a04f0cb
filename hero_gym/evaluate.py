"""Resumable evaluation: k attempts per task of a policy on a registered env, stored episode by episode.

Every (task, attempt) gets its own seed derived from the run's base seed, so a resumed or re-run episode sees the
same env/user randomness, and two policies evaluated with the same seed are paired episode by episode (what
``hero-gym compare`` relies on).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import numpy as np

from hero_gym.records import RunStore, RunStoreError, record_from_trajectory
from hero_gym.registry import get_spec

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_tasks(text: str | None, n_tasks: int) -> list[int]:
    """Task indices from "all", "7", "0-9" (inclusive) or a comma list of those ("0-4,10,12-13"), sorted, unique."""
    if n_tasks < 1:
        raise ValueError("this split has no tasks")
    if text is None or text.strip().lower() == "all":
        return list(range(n_tasks))
    out: set[int] = set()
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"bad --tasks {text!r}: use 'all', an index like 3, a range like 0-9, or a comma list")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"bad --tasks range {part.strip()!r}: the end is before the start")
        if hi >= n_tasks:
            raise ValueError(f"--tasks {part.strip()!r} is out of range: the split has {n_tasks} tasks (0-{n_tasks - 1})")
        out.update(range(lo, hi + 1))
    return sorted(out)


def episode_seed(base_seed: int, task: int, attempt: int) -> int:
    """A 31-bit seed for one (task, attempt), independent of which other tasks a run selects."""
    return int(np.random.SeedSequence([int(base_seed), int(task), int(attempt)]).generate_state(1)[0] >> 1)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _user_kwarg(env_id: str, user: str | None) -> Any:
    """The env's `user=` argument from the CLI's --user text (tau envs only)."""
    if user is None:
        return None
    if "tau" not in get_spec(env_id).entry_point:
        raise ValueError(f"--user applies to the tau environments only, not {env_id}")
    if user == "scripted":
        return "scripted"
    if user.startswith("llm:") and len(user) > 4:
        return _load_policy(user[4:], env_id)  # TauEnv wraps a Policy in its LLMUser
    raise ValueError(f"bad --user {user!r}: use 'scripted' or 'llm:POLICY_SPEC'")


def _load_policy(spec: str, env_id: str, **kw) -> Any:
    from hero_gym.policies.scripted import load_policy

    try:
        return load_policy(spec, env_id=env_id, **kw)
    except (ImportError, AttributeError, TypeError) as e:  # a spec naming something that is not there is bad input
        raise ValueError(f"cannot load policy {spec!r}: {e}") from None


def run_eval(
    env_id: str,
    policy: str | Any,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    k: int = 1,
    max_turns: int | None = None,
    tasks: str | list[int] | None = "all",
    limit: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    max_new_tokens: int = 256,
    user: str | None = None,
    judge: str | None = None,
    method: str | None = None,
    train_budget: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    env_kwargs: dict | None = None,
    policy_kwargs: dict | None = None,
) -> RunStore:
    """Evaluate `policy` (a load_policy spec or a Policy object) on `env_id` and store every episode under `out`.

    `policy_kwargs` go to load_policy (e.g. ``{"prefix_cache_mb": 512}`` for a local model); they change speed, not
    results, so they are not part of the run's identity.
    Episodes already stored in `out` are skipped (resume); a different configuration in `out` raises RunStoreError.
    Bad arguments raise ValueError with a message meant for the user. Returns the RunStore.
    """
    spec = get_spec(env_id)
    split = split or spec.default_split
    if split not in spec.splits:
        raise ValueError(f"{env_id} has no split {split!r}; splits: {', '.join(sorted(spec.splits))}")
    k = _positive_int("k", k)
    max_turns = _positive_int("max_turns", spec.default_max_turns if max_turns is None else max_turns)
    max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if batch_size is not None:
        batch_size = _positive_int("batch_size", batch_size)
    if train_budget is not None:
        train_budget = _positive_int("train_budget", train_budget)
    if isinstance(tasks, (list, tuple)):
        n = spec.splits[split]
        bad = [t for t in tasks if not 0 <= int(t) < n]
        if bad:
            raise ValueError(f"task(s) {bad[:5]} out of range: the split has {n} tasks")
        task_list = sorted({int(t) for t in tasks})
    else:
        task_list = parse_tasks(tasks, spec.splits[split])
    if limit is not None:
        task_list = task_list[: _positive_int("limit", limit)]
    user_obj = _user_kwarg(env_id, user)
    extra_env = {} if user_obj is None else {"user": user_obj}
    if judge is not None:
        if "Tau2" not in env_id:
            raise ValueError(f"--judge scores tau2's NL assertions; {env_id} has none")
        extra_env["judge"] = _load_policy(judge, env_id)

    policy_name = policy if isinstance(policy, str) else getattr(policy, "name", type(policy).__name__)
    config = {"env": env_id, "split": split, "policy": policy_name, "k": k, "max_turns": max_turns, "seed": int(seed),
              "method": method, "train_budget": train_budget, "temperature": float(temperature),
              "max_new_tokens": max_new_tokens, "user": user, "tasks": task_list}
    if judge is not None:  # only when set, so runs stored before --judge existed still resume
        config["judge"] = judge
    store = RunStore(out)
    with store.lock():
        store.init(config)
        done = store.done_keys()
        wanted = [(t, a) for t in task_list for a in range(k)]
        pending = [(t, a) for t, a in wanted if (env_id, split, t, a) not in done]
        if pending:
            if isinstance(policy, str):
                policy = _load_policy(policy, env_id, **(policy_kwargs or {}))
            _run_pending(store, env_id, split, policy, policy_name, pending, wanted, done, seed=int(seed),
                         max_turns=max_turns, temperature=float(temperature), max_new_tokens=max_new_tokens,
                         method=method, train_budget=train_budget, batch_size=batch_size, progress=progress,
                         env_kwargs={**(env_kwargs or {}), **extra_env})
    return store


def _run_pending(store, env_id, split, policy, policy_name, pending, wanted, done, *, seed, max_turns, temperature,
                 max_new_tokens, method, train_budget, batch_size, progress, env_kwargs):
    from tqdm.auto import tqdm

    from hero_gym.rollout import EpisodeSpec, run_episodes

    specs = [EpisodeSpec(task_index=t, attempt=a, seed=episode_seed(seed, t, a), split=split) for t, a in pending]
    attempt_of = {(s.task_index, s.seed): s.attempt for s in specs}
    if len(attempt_of) != len(specs):
        raise RunStoreError("two episodes drew the same seed; use another --seed")  # 31-bit seeds: practically never
    stored: set[tuple[int, int]] = set()
    earlier = [r for r in store.load() if (r.task, r.attempt) in set(wanted)]
    wins, count = sum(r.success for r in earlier), len(earlier)
    bar = tqdm(total=len(wanted), initial=len(wanted) - len(pending), disable=not progress, unit="ep",
               desc=env_id.split("/")[-1], dynamic_ncols=True)

    def on_episode(traj) -> None:
        nonlocal wins, count
        key = (int(traj.task_index), traj.seed)
        if key not in attempt_of:
            raise RunStoreError(f"rollout returned an episode nobody asked for: task {traj.task_index}, seed {traj.seed}")
        attempt = attempt_of[key]
        if (key[0], attempt) in stored:
            return  # already written from the callback; the returned list repeats it
        store.append(record_from_trajectory(traj, attempt=attempt, policy=policy_name, max_turns=max_turns,
                                            method=method, train_budget=train_budget, run=store.dir.name))
        stored.add((key[0], attempt))
        wins, count = wins + bool(traj.success), count + 1
        bar.update(1)
        bar.set_postfix(success=f"{wins / count:.3f}")

    env_kwargs = {"split": split, "max_turns": max_turns, **env_kwargs}
    try:
        trajs = run_episodes(env_id, policy, specs, env_kwargs=env_kwargs, max_new_tokens=max_new_tokens,
                             temperature=temperature, batch_size=batch_size, on_episode=on_episode)
        for traj in trajs or []:  # in case a rollout backend returns episodes without calling back
            on_episode(traj)
    finally:
        bar.close()
