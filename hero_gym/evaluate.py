"""Resumable evaluation: k attempts per task of a policy on a registered env, stored episode by episode.

Every (task, attempt) gets its own seed derived from the run's base seed, so a resumed or re-run episode sees the
same env/user randomness, and two policies evaluated with the same seed are paired episode by episode (what
``hero-gym compare`` relies on).

Everything is checked before anything is written: env id, split, tasks, numbers, policy/user/judge specs (a typo
gets the nearest valid names), the --out path, and an existing run's configuration. An episode that ended in error
is stored (for diagnosis) but is not done: the next invocation runs it again, and ``retry_errors`` reruns errored
episodes within one invocation. The episode keys are generated as they are needed and handed to the rollout in
chunks whose trajectories are dropped once stored, so memory does not grow with the number of episodes.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from hero_gym.records import EPISODES, LOCK, RUN_JSON, RunStore, RunStoreError, printable, record_from_trajectory
from hero_gym.registry import ENV_SPECS, EnvSpec

MAX_K = 10_000  # attempts per task; pass@k beyond this is not a question anyone asks of a benchmark
DEFAULT_BATCH = 32  # episodes live at once: full enough for a GPU, and episodes are stored as they finish
CHUNK = 4096  # episode keys handed to one rollout call; the rest are generated when these are stored

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


def suggest(word: str, choices: Iterable[str]) -> str:
    """"; did you mean 'x' or 'y'?" for the valid names closest to `word` (difflib), or "" when none is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def env_spec(env_id: str) -> EnvSpec:
    """The registry entry of `env_id`; ValueError naming the nearest registered ids otherwise."""
    if env_id not in ENV_SPECS:
        raise ValueError(f"unknown environment {env_id!r}{suggest(env_id, ENV_SPECS)} "
                         f"(registered: {', '.join(sorted(ENV_SPECS))})")
    return ENV_SPECS[env_id]


BUILTIN_POLICIES = ("smollm2", "tiny", "oracle", "random")
POLICY_PREFIXES = ("hf:", "vllm:", "http:", "https:", "openai:", "scripted:")


def check_policy_spec(spec: Any, env_id: str, what: str = "--policy") -> None:
    """Check a policy spec without loading a model: its form, the module and factory of ``module:factory``, that
    ``oracle``/``random`` have a baseline for the env. ValueError (with the nearest valid names) otherwise."""
    from hero_gym.policies.scripted import SPEC_HELP, resolve_factory

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{what} is empty; {SPEC_HELP}")
    spec = spec.strip()
    if spec in BUILTIN_POLICIES:
        if spec in ("oracle", "random") and not any(n in env_id for n in ("Tau", "WebShop")):
            raise ValueError(f"no {spec!r} baseline for env {env_id!r} (there are baselines for Tau* and WebShop* envs)")
        return
    if spec.startswith(POLICY_PREFIXES):
        head, _, rest = spec.partition(":")
        if not rest.strip("/ "):
            raise ValueError(f"{what} {spec!r} names no model after '{head}:'; {SPEC_HELP}")
        if head in ("http", "https") and "#" not in rest:
            raise ValueError(f"{what} {spec!r} needs the model after '#': 'http:BASE_URL#MODEL'")
        return
    if Path(spec).expanduser().is_dir():
        return
    if ":" not in spec:
        raise ValueError(f"unknown policy spec {spec!r}{suggest(spec, BUILTIN_POLICIES)}; {SPEC_HELP}")
    try:
        obj = resolve_factory(spec)
    except ImportError as e:
        raise ValueError(f"cannot load policy {spec!r}: {e}") from None
    except AttributeError as e:
        public = [n for n in dir(e.obj) if not n.startswith("_")]
        raise ValueError(f"cannot load policy {spec!r}: {e}{suggest(e.name, public)}") from None
    if not callable(obj):
        raise ValueError(f"cannot load policy {spec!r}: it is a {type(obj).__name__}, not a factory or a policy")


def check_out_dir(out: Any) -> Path:
    """The run directory `out`, or ValueError (one line) when it cannot be one: empty, a file or device, a directory
    holding something other than a run, or a place this process cannot write."""
    if out is None or not str(out).strip():
        raise ValueError("--out is empty: name a run directory, e.g. --out runs/my-run")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory; a run is a directory of {RUN_JSON} and "
                         f"{EPISODES}: name a new or existing run directory")
    if path.is_dir():
        try:
            extra = sorted(p.name for p in path.iterdir() if p.name not in (RUN_JSON, EPISODES, LOCK, RUN_JSON + ".tmp"))
        except OSError as e:
            raise ValueError(f"--out {out}: cannot read the directory ({e.strerror})") from None
        if extra and not (path / RUN_JSON).is_file() and not (path / EPISODES).is_file():
            raise ValueError(f"--out {out} is a directory that holds other files ({', '.join(extra[:3])}"
                             f"{', ...' if len(extra) > 3 else ''}) and no run; name a new or empty directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: the directory is not writable")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, so the run directory cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot create it, {parent} is not writable")
    return path


def _user_kwarg(env_id: str, user: str | None, load: bool) -> Any:
    """The env's `user=` argument from the CLI's --user text (tau envs only); with load=False, only checked."""
    if user is None:
        return None
    if "tau" not in env_spec(env_id).entry_point:
        raise ValueError(f"--user applies to the tau environments only, not {env_id}")
    if user == "scripted":
        return "scripted"
    if user.startswith("llm:") and len(user) > 4:
        check_policy_spec(user[4:], env_id, "--user llm:")
        return _load_policy(user[4:], env_id) if load else None  # TauEnv wraps a Policy in its LLMUser
    raise ValueError(f"bad --user {user!r}: use 'scripted' or 'llm:POLICY_SPEC'")


def _load_policy(spec: str, env_id: str, **kw) -> Any:
    from hero_gym.policies.scripted import load_policy

    try:
        return load_policy(spec, env_id=env_id, **kw)
    except (ImportError, AttributeError, TypeError, OSError) as e:  # a spec naming what is not there is bad input
        raise ValueError(f"cannot load policy {spec!r}: {e}") from None


@dataclass
class EvalOutcome:
    """What one invocation of run_eval asked and found, for the caller's report (``RunStore.outcome``)."""

    tasks: list[int]
    k: int
    ran: int  # episodes run by this invocation (retries included)
    stored_attempts: int  # most attempts any selected task has stored
    errors: list  # EpisodeRecords (no trajectory) of the selected episodes whose latest try ended in error




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
    retry_errors: int = 0,
    progress: bool = True,
    env_kwargs: dict | None = None,
    policy_kwargs: dict | None = None,
) -> RunStore:
    """Evaluate `policy` (a load_policy spec or a Policy object) on `env_id` and store every episode under `out`.

    `policy_kwargs` go to load_policy (e.g. ``{"prefix_cache_mb": 512}`` for a local model); they change speed, not
    results, so they are not part of the run's identity. `batch_size` is the number of episodes live at once
    (default DEFAULT_BATCH). `retry_errors` reruns the episodes that ended in error up to that many more times.
    Episodes already stored with a result are skipped (resume); errored ones run again; a different configuration
    in `out` raises RunStoreError. Bad arguments raise ValueError with a message meant for the user, before
    anything is written. Returns the RunStore, with ``store.outcome`` (an EvalOutcome) set.
    """
    spec = env_spec(env_id)
    split = split or spec.default_split
    if split not in spec.splits:
        raise ValueError(f"{env_id} has no split {split!r}{suggest(str(split), spec.splits)}; "
                         f"splits: {', '.join(sorted(spec.splits))}")
    k = _positive_int("k", k)
    if k > MAX_K:
        raise ValueError(f"k={k} attempts per task is more than the {MAX_K:,} allowed")
    max_turns = _positive_int("max_turns", spec.default_max_turns if max_turns is None else max_turns)
    max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    batch_size = DEFAULT_BATCH if batch_size is None else _positive_int("batch_size", batch_size)
    if isinstance(retry_errors, bool) or not isinstance(retry_errors, (int, np.integer)) or retry_errors < 0:
        raise ValueError(f"retry_errors must be a non-negative integer, got {retry_errors!r}")
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
    if isinstance(policy, str):
        check_policy_spec(policy, env_id)
    _user_kwarg(env_id, user, load=False)
    if judge is not None:
        if "Tau2" not in env_id:
            raise ValueError(f"--judge scores tau2's NL assertions; {env_id} has none")
        check_policy_spec(judge, env_id, "--judge")
    check_out_dir(out)

    policy_name = policy if isinstance(policy, str) else getattr(policy, "name", type(policy).__name__)
    config = {"env": env_id, "split": split, "policy": policy_name, "k": k, "max_turns": max_turns, "seed": int(seed),
              "method": method, "train_budget": train_budget, "temperature": float(temperature),
              "max_new_tokens": max_new_tokens, "user": user, "tasks": task_list}
    if judge is not None:  # only when set, so runs stored before --judge existed still resume
        config["judge"] = judge
    store = RunStore(out)
    store.check(config)  # reads only: a mismatch is reported before anything is written

    def pending(done: set) -> Iterator[tuple[int, int]]:
        return ((t, a) for t in task_list for a in range(k) if (env_id, split, t, a) not in done)

    ran = 0
    if next(pending(store.done_keys()), None) is not None:
        # Load everything that can fail on bad input while the directory is still untouched.
        if isinstance(policy, str):
            policy = _load_policy(policy, env_id, **(policy_kwargs or {}))
        extra_env = {}
        if user is not None:
            extra_env["user"] = _user_kwarg(env_id, user, load=True)
        if judge is not None:
            extra_env["judge"] = _load_policy(judge, env_id)
        with store.lock():
            store.init(config)
            for _ in range(1 + retry_errors):
                done = store.done_keys()
                todo = pending(done)
                first = next(todo, None)
                if first is None:
                    break
                ran += _run_pending(store, env_id, split, policy, policy_name, itertools.chain([first], todo),
                                    total=len(task_list) * k, wanted=(set(task_list), k), seed=int(seed),
                                    max_turns=max_turns, temperature=float(temperature),
                                    max_new_tokens=max_new_tokens, method=method, train_budget=train_budget,
                                    batch_size=batch_size, progress=progress,
                                    env_kwargs={**(env_kwargs or {}), **extra_env})
    store.outcome = _outcome(store, task_list, k, ran)
    return store


def _outcome(store: RunStore, task_list: list[int], k: int, ran: int) -> EvalOutcome:
    task_set = set(task_list)
    outcomes = store.outcomes()
    attempts = [key[3] for key in outcomes if key[2] in task_set]
    errored = {key for key, (_, error) in outcomes.items() if error is not None and key[2] in task_set and key[3] < k}
    errors = [r for r in store.load(keep_trajectory=False) if r.key in errored] if errored else []
    return EvalOutcome(tasks=task_list, k=k, ran=ran, stored_attempts=max(attempts) + 1 if attempts else 0,
                       errors=errors)


def _run_pending(store, env_id, split, policy, policy_name, pending, *, total, wanted, seed, max_turns, temperature,
                 max_new_tokens, method, train_budget, batch_size, progress, env_kwargs) -> int:
    """Run the (task, attempt) keys of `pending` (an iterator, consumed CHUNK at a time); return how many ran."""
    from hero_gym.progress import progress_bar
    from hero_gym.rollout import EpisodeSpec, run_episodes

    task_set, k = wanted
    earlier = [(s, e) for key, (s, e) in store.outcomes().items() if key[2] in task_set and key[3] < k]
    done_before = sum(e is None for _, e in earlier)
    wins, count = sum(s for s, e in earlier if e is None), done_before
    bar = progress_bar(total, initial=done_before, disable=not progress, unit="ep", desc=env_id.split("/")[-1])
    live = {"turns": 0, "tokens": 0, "t0": time.perf_counter()}

    def on_turn(traj) -> None:  # a slow model finishes few episodes; turns and tokens show it is working
        live["turns"] += 1
        live["tokens"] += len(traj.turns[-1].action_token_ids)
        rate = live["tokens"] / max(1e-9, time.perf_counter() - live["t0"])
        bar.set_postfix(success=f"{wins / count:.3f}" if count else "-", turns=live["turns"], tokens=live["tokens"],
                        tok_s=f"{rate:.1f}")
    env_kwargs = {"split": split, "max_turns": max_turns, **env_kwargs}
    ran, first_error_shown = 0, False
    try:
        while chunk := list(itertools.islice(pending, CHUNK)):
            specs = [EpisodeSpec(task_index=t, attempt=a, seed=episode_seed(seed, t, a), split=split) for t, a in chunk]
            attempt_of = {(s.task_index, s.seed): s.attempt for s in specs}
            if len(attempt_of) != len(specs):
                raise RunStoreError("two episodes drew the same seed; use another --seed")  # 31-bit seeds: ~never
            stored: set[tuple[int, int]] = set()

            def on_episode(traj) -> None:
                nonlocal wins, count, first_error_shown
                key = (int(traj.task_index), traj.seed)
                if key not in attempt_of:
                    raise RunStoreError(f"rollout returned an episode nobody asked for: task {traj.task_index}, "
                                        f"seed {traj.seed}")
                attempt = attempt_of[key]
                if (key[0], attempt) in stored:
                    return  # already written from the callback; a backend's returned list repeats it
                store.append(record_from_trajectory(traj, attempt=attempt, policy=policy_name, max_turns=max_turns,
                                                    method=method, train_budget=train_budget, run=store.dir.name))
                stored.add((key[0], attempt))
                if traj.error is not None and not first_error_shown:
                    first_error_shown = True  # say it now: a dead server should not wait for the end of the run
                    message = " ".join(str(traj.error).split())[:300]
                    bar.write(printable(f"episode error (task {key[0]}, attempt {attempt}): {message}; stored, not "
                                         "scored, retried by the next run"), file=sys.stderr)
                if traj.error is None:  # an errored episode is no result: the bar counts results only
                    wins, count = wins + bool(traj.success), count + 1
                    bar.update(1)
                    bar.set_postfix(success=f"{wins / count:.3f}", turns=live["turns"], tokens=live["tokens"])

            trajs = run_episodes(env_id, policy, specs, env_kwargs=env_kwargs, max_new_tokens=max_new_tokens,
                                 temperature=temperature, batch_size=batch_size, on_episode=on_episode,
                                 on_turn=on_turn, keep_results=False)
            for traj in trajs or []:  # in case a rollout backend returns episodes without calling back
                on_episode(traj)
            ran += len(stored)
    finally:
        bar.close()
    return ran
