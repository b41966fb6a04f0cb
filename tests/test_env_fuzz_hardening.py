"""Hostile actions (deep nesting, huge ints, several calls per message, calculate chains, bracket soup, texts at the
length limit) against every env, with seeds no other fuzz test uses; and reset arguments of the base env."""

import pytest

from hero_gym.benchmarks.fuzz_envs import ENV_IDS, fuzz_env


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_hostile_actions_never_raise_leak_or_replay_differently(env_id):
    r = fuzz_env(env_id, 400, seed=4409 + ENV_IDS.index(env_id), replay_every=10)
    assert r.actions == 400 and r.exceptions == 0 and not r.leak
    assert r.replays > 0 and r.replay_mismatches == 0
    assert 0 < r.invalid < r.actions  # the fuzz reached both valid and invalid actions


@pytest.mark.parametrize("env_id", ["hero_gym/WebShop-v0", "hero_gym_test/Toy-v0"])
def test_bad_reset_arguments_of_any_env_raise_value_error(env_id):
    import harness_toyenv
    from hero_gym.registry import make

    harness_toyenv.register()  # another test may have unregistered it after the first import

    env = make(env_id).unwrapped
    for kwargs, says in (({"options": 5}, "options must be None or a dict"), ({"seed": -3}, "seed must be"),
                         ({"options": {"task_index": "1"}}, "task_index must be an integer"),
                         ({"options": {"goal": 1}}, "allowed: \\['task_index'\\]")):
        with pytest.raises(ValueError, match=says):
            env.reset(**kwargs)
    assert env.reset(seed=1, options={"task_index": 0})[1]["task_index"] == 0
