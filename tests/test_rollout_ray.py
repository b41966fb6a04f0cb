"""The Ray executor: envs in Ray actors give the same trajectories as local envs (Ray is the optional extra
`hero-gym[ray]`, also in the dev extra so CI runs this)."""

import pytest

from hero_gym.policies.scripted import load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes

ray = pytest.importorskip("ray", reason="executor='ray' needs the optional extra: pip install 'hero-gym[ray]'")


@pytest.mark.slow
def test_ray_executor_matches_local():
    env_id = "hero_gym/TauRetail-v0"
    policy = load_policy("oracle", env_id=env_id)
    specs = [EpisodeSpec(i, seed=i) for i in range(5)]
    local = run_episodes(env_id, policy, specs, batch_size=3)
    try:
        remote = run_episodes(env_id, policy, specs, batch_size=3, executor="ray", num_env_workers=2)
    finally:
        ray.shutdown()
    assert [t.task_index for t in remote] == [s.task_index for s in specs]
    for a, b in zip(local, remote):
        assert b.error is None and b.success and b.reward == a.reward == 1.0
        assert [t.action for t in a.turns] == [t.action for t in b.turns]
        assert [t.observation for t in a.turns] == [t.observation for t in b.turns]
        assert b.env_time_s > 0
