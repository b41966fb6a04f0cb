"""Gymnasium conventions: vector envs in both modes, TimeLimit over our envs, and shared-memory text."""

import multiprocessing as mp

import gymnasium as gym
import pytest
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

import hero_gym
from hero_gym.env import AnyText

ODD = "caf\u00e9\u00a0\u2014 \U0001F600 \u4e2d\u6587"  # no-break space, em dash, emoji: outside the sampling charset


def test_anytext_round_trips_any_string_through_shared_memory():
    space = AnyText(max_length=64)
    mem = create_shared_memory(space, n=3, ctx=mp)
    view = read_from_shared_memory(space, mem, n=3)
    for i, text in enumerate([ODD, "", "x" * 64]):
        write_to_shared_memory(space, i, text, mem)
    assert tuple(view) == (ODD, "", "x" * 64)
    write_to_shared_memory(space, 1, "later", mem)
    assert view[1] == "later"  # a live view, as Gymnasium expects of shared memory
    from copy import deepcopy

    assert deepcopy(view) == (ODD, "later", "x" * 64) and isinstance(deepcopy(view), tuple)


@pytest.mark.parametrize("env_id,actions", [
    ("hero_gym/WebShop-v0", [("search[red shoes]", "click[Nope]"), ("click[< Prev]", f"search[{ODD}]")]),
    ("hero_gym/Tau2Retail-v0", [("Hello, how can I help?", '{"name": "find_user_id_by_email", "arguments": '
                                 '{"email": "noah@example.com"}}'), (f"Sorry: {ODD}", "Anything else?")]),
])
def test_vector_envs_give_the_same_episodes_in_sync_and_async_mode(env_id, actions):
    runs = {}
    for mode in ("sync", "async"):
        envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode)
        try:
            obs, info = envs.reset(seed=[0, 1])
            steps = [(tuple(obs), tuple(info["task_index"]))]
            for batch in actions:
                obs, reward, terminated, truncated, info = envs.step(batch)
                steps.append((tuple(obs), tuple(reward), tuple(terminated), tuple(truncated)))
        finally:
            envs.close()
        runs[mode] = steps
    assert runs["sync"] == runs["async"]
    assert all(o for o in runs["async"][1][0])  # observations came through, not empty slots
    assert len({o for step in runs["async"] for o in step[0]}) > 2  # and they change from step to step


def test_time_limit_truncates_with_turn_budget_reason():
    env = gym.make("hero_gym/WebShop-v0", max_episode_steps=2)
    obs, info = env.reset(seed=0, options={"task_index": 0})
    assert (info["max_turns"], info["turns_left"]) == (2, 2)
    _, _, terminated, truncated, info = env.step("click[Nope]")
    assert not (terminated or truncated) and info["termination_reason"] is None
    _, reward, terminated, truncated, info = env.step("click[Nope]")
    assert (reward, terminated, truncated, info["termination_reason"], info["turns_left"]) == \
           (0.0, False, True, "turn_budget", 0)
    # a manual TimeLimit counts too; a looser one leaves the env's own max_turns in charge
    assert gym.wrappers.TimeLimit(hero_gym.make("hero_gym/WebShop-v0", max_turns=5), 3).reset(seed=0)[1]["max_turns"] == 3
    assert gym.make("hero_gym/WebShop-v0", max_turns=4, max_episode_steps=50).reset(seed=0)[1]["max_turns"] == 4
    assert hero_gym.make("hero_gym/WebShop-v0", max_turns=4).reset(seed=0)[1]["max_turns"] == 4
