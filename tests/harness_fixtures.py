"""Builders of synthetic run directories for the harness tests (not a test module itself)."""

from __future__ import annotations

import pytest

from hero_gym.records import RunStore
from hero_gym.types import EpisodeRecord


@pytest.fixture(autouse=True, scope="module")
def toy_env():
    """The toy env registered for a test module's duration (import it into the module to use it)."""
    import harness_toyenv  # here, not at the top: modules that only build runs keep the real registry

    harness_toyenv.register()
    yield
    harness_toyenv.unregister()


def record(task: int, attempt: int, success: bool, *, env: str = "toy/Env-v0", split: str | None = "test",
           policy: str = "p", method: str | None = None, train_budget: int | None = None, turns: int = 3,
           seed: int | None = None, trajectory: dict | None = None, reward=None, **kw) -> EpisodeRecord:
    """One stored episode; `reward` defaults to 1/0 with success, or a float, or f(task, attempt) for partial credit."""
    return EpisodeRecord(
        env=env, split=split, task=task, attempt=attempt, seed=seed if seed is not None else 1000 * task + attempt,
        policy=policy, success=success, turns=turns,
        reward=(1.0 if success else 0.0) if reward is None else reward(task, attempt) if callable(reward) else reward,
        termination_reason="success" if success else "turn_budget", tokens_in=100, tokens_out=20 * turns,
        env_steps=turns, wall_time_s=0.5 * turns, gen_time_s=0.4 * turns, env_time_s=0.1 * turns,
        started_at=1000.0 + 10 * task + attempt, ended_at=1000.0 + 10 * task + attempt + 0.5 * turns, method=method, train_budget=train_budget, max_turns=10,
        trajectory=trajectory, **kw)


def make_run(path, outcomes: dict[int, list[bool]], *, config: dict | None = None, **kw) -> RunStore:
    """A run directory whose task t has attempts with the successes outcomes[t]."""
    store = RunStore(path)
    cfg = {"env": kw.get("env", "toy/Env-v0"), "split": kw.get("split", "test"), "policy": kw.get("policy", "p")}
    store.init({**cfg, **(config or {})})
    store.append([record(t, a, s, **kw) for t, outs in outcomes.items() for a, s in enumerate(outs)])
    return store
