"""Environment registry: Gymnasium ids plus the facts `hero-gym envs` lists (splits, task counts, budgets).

Entry points are strings, so importing `hero_gym` registers every id without importing any environment module
(and without loading any data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym

NAMESPACE = "hero_gym"


@dataclass(frozen=True)
class EnvSpec:
    """What the harness needs to know about an env id before making it."""

    id: str
    entry_point: str
    splits: dict[str, int]  # split name -> number of tasks
    default_split: str
    default_max_turns: int
    description: str
    kwargs: dict = field(default_factory=dict)


ENV_SPECS: dict[str, EnvSpec] = {}


def register_env(spec: EnvSpec) -> None:
    if spec.id in ENV_SPECS:
        raise ValueError(f"env id {spec.id!r} is registered twice")
    ENV_SPECS[spec.id] = spec
    gym.register(
        id=spec.id,
        entry_point=spec.entry_point,
        kwargs={"max_turns": spec.default_max_turns, "split": spec.default_split, **spec.kwargs},
    )


def get_spec(env_id: str) -> EnvSpec:
    try:
        return ENV_SPECS[env_id]
    except KeyError:
        known = ", ".join(sorted(ENV_SPECS))
        raise ValueError(f"unknown environment {env_id!r}; registered: {known}") from None


def make(env_id: str, **kwargs) -> gym.Env:
    """`gymnasium.make` with a clear error for unknown ids and splits; returns the unwrapped-by-default env."""
    spec = get_spec(env_id)
    split = kwargs.get("split", spec.default_split)
    if split not in spec.splits:
        raise ValueError(f"{env_id} has no split {split!r}; splits: {sorted(spec.splits)}")
    return gym.make(env_id, disable_env_checker=True, **kwargs)
