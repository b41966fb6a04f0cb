"""Shared by the adapter tests: what the oracle does in-process, to compare the adapters against."""

from hero_gym.policies import load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes


def oracle_episode(env_id: str, task_index: int, *, split: str | None = None, seed: int = 0, max_turns: int | None = None):
    """The in-process oracle Trajectory of one task (its turns hold the actions and step rewards)."""
    kw = {"max_turns": max_turns} if max_turns else {}
    (traj,) = run_episodes(env_id, load_policy("oracle", env_id=env_id),
                           [EpisodeSpec(task_index=task_index, seed=seed, split=split)], env_kwargs=kw)
    assert traj.error is None, traj.error
    return traj
