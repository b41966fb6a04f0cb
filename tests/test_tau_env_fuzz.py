"""Fuzzed actions never raise and never corrupt state: the shared base database stays byte-identical and gold
replays still score 1.0 afterwards."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero_gym.actions import format_tool_call
from hero_gym.envs.tau.baselines import _value_pools
from hero_gym.envs.tau.db import base_tables
from hero_gym.envs.tau.env import TauEnv
from hero_gym.envs.tau.airline_tools import WRITE_TOOLS as AIRLINE_WRITES
from hero_gym.envs.tau.retail_tools import WRITE_TOOLS as RETAIL_WRITES
from hero_gym.envs.tau.reward import TERMINATE_TOOLS

WRITE_TOOLS = set(AIRLINE_WRITES) | set(RETAIL_WRITES)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)


class ChattyUser:
    """Replies deterministically; stops on one word so some episodes end early."""

    def reset(self, task, seed=None, *, user_record=None):
        return "Hi."

    def step(self, message):
        return "###STOP###" if "goodbye" in message else "Tell me more."


def action_strategy(schemas, pools):
    names = [s["function"]["name"] for s in schemas]
    props = {s["function"]["name"]: s["function"]["parameters"].get("properties", {}) for s in schemas}

    @st.composite
    def plausible_call(draw):
        # Mostly well-typed calls with real ids, so write tools really run (and mutate) during fuzzing.
        name = draw(st.sampled_from(names))
        rng = random.Random(draw(st.integers(0, 2**32)))
        args = {}
        for key, schema in props[name].items():
            if draw(st.integers(0, 9)) == 0:
                continue  # sometimes drop an argument
            pool = pools.get(key)
            if "enum" in schema:
                args[key] = rng.choice(schema["enum"])
            elif schema.get("type") == "array" and pool:
                args[key] = rng.sample(pool, k=min(len(pool), rng.randint(1, 2)))
            elif pool:
                args[key] = rng.choice(pool)
            else:
                args[key] = draw(json_value)
        if draw(st.integers(0, 9)) == 0:
            args[draw(st.text(min_size=1, max_size=6))] = draw(json_value)
        return format_tool_call(name, args)

    wild_call = st.builds(
        lambda n, a, key: json.dumps({"name": n, key: a}),
        st.one_of(st.sampled_from(names), st.text(max_size=12)),
        st.one_of(st.dictionaries(st.text(max_size=10), json_value, max_size=4), json_value),
        st.sampled_from(["arguments", "kwargs", "parameters"]),
    )
    call = st.one_of(plausible_call(), wild_call)
    hermes = call.map(lambda c: f"Let me check.\n<tool_call>\n{c}\n</tool_call>")
    cut = st.tuples(call, st.integers(0, 200)).map(lambda t: t[0][: t[1]])
    return st.one_of(st.text(max_size=80), call, hermes, cut, st.just("goodbye"), st.just(""))


def _fingerprint(version, domain):
    return {n: json.dumps(t.records, sort_keys=True) for n, t in base_tables(version, domain).items()}


def _gold_all_one(env):
    for i in range(env.num_tasks):
        env.reset(options={"task_index": i})
        for a in env.gold_actions():
            if a["name"] not in TERMINATE_TOOLS:
                env.step(format_tool_call(a["name"], a["kwargs"]))
        env.step("Here you go: " + " ".join(env.task.outputs))
        r, info = env.compute_reward()
        assert r == 1.0 or (env.version == "tau2" and info["components"].get("DB") == 1.0), (i, info)


@pytest.mark.slow
@pytest.mark.parametrize("domain, version, examples", [("retail", "v1", 2000), ("airline", "v1", 2000), ("retail", "tau2", 2000), ("airline", "tau2", 2000)])
def test_fuzzed_actions_never_raise_or_corrupt(domain, version, examples):
    env = TauEnv(domain, version, "test", max_turns=5, user=ChattyUser())
    before = _fingerprint(version, domain)
    strategy = action_strategy(env.tool_schemas, _value_pools(domain, version))
    stats = {"invalid": 0, "tool": 0, "ended": 0, "writes": 0}

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.integers(0, env.num_tasks - 1), st.lists(strategy, min_size=1, max_size=4))
    def run(index, actions):
        obs, info = env.reset(options={"task_index": index})
        for a in actions:
            obs, r, term, trunc, info = env.step(a)
            assert isinstance(obs, str) and isinstance(r, float) and isinstance(info["invalid"], bool)
            assert info["messages"][-1]["content"] == obs or info["termination_reason"] == "error"
            stats["invalid"] += info["invalid"]
            stats["tool"] += "tool_name" in info
            stats["writes"] += info.get("tool_name") in WRITE_TOOLS and not obs.lower().startswith("error")
            if term or trunc:
                stats["ended"] += 1
                assert 0.0 <= r <= 1.0 and "reward_info" in info
                break

    run()
    # the fuzz really exercised the env: invalid actions, real tool calls, some successful writes, episode ends
    assert stats["invalid"] > examples // 10 and stats["tool"] > examples // 4 and stats["ended"] > 10
    assert stats["writes"] > 0, stats
    assert _fingerprint(version, domain) == before
    env.max_turns = 100  # gold needs more turns than the fuzzing budget
    _gold_all_one(env)
