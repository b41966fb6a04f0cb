"""Gymnasium's own checker over every registered hero-gym id, plus the contract every env shares."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import hero_gym

# The package's own ids: test modules may register (and later unregister) toy envs before this one is collected.
ENV_IDS = sorted(i for i in hero_gym.ENV_SPECS if i.startswith("hero_gym/"))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, max_turns=4).unwrapped
    check_env(env, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_shared_info_contract_and_budget(env_id):
    env = gym.make(env_id, max_turns=2).unwrapped
    obs, info = env.reset(seed=3, options={"task_index": 0})
    assert isinstance(obs, str) and obs
    for key in ("task_index", "turns_used", "turns_left", "max_turns", "termination_reason", "messages", "tools"):
        assert key in info, key
    assert info["turns_used"] == 0 and info["turns_left"] == 2
    assert info["messages"][0]["role"] == "system"
    # two turns of chatter exhaust the budget: truncated, reward 0, reason turn_budget
    done = False
    for _ in range(2):
        obs, reward, terminated, truncated, info = env.step("hello, I am thinking about it")
        done = terminated or truncated
        if done:
            break
    if not terminated:
        assert truncated and reward == 0.0 and info["termination_reason"] == "turn_budget"
        assert info["turns_left"] == 0 and not info["success"]
    with pytest.raises(RuntimeError, match="finished episode"):
        env.step("more")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_task_index_is_a_value_error(env_id):
    env = gym.make(env_id).unwrapped
    n = env.num_tasks
    assert n == hero_gym.ENV_SPECS[env_id].splits[hero_gym.ENV_SPECS[env_id].default_split]
    for bad in (-1, n, 10**9, "3", 1.5):
        with pytest.raises(ValueError):
            env.reset(options={"task_index": bad})
    with pytest.raises(ValueError):
        gym.make(env_id, max_turns=0)
