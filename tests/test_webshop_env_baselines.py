"""WebShop scripted baselines: the oracle buys the goal through the pages; the random policy stays valid."""

import pytest

from hero_gym.envs.webshop.baselines import OraclePolicy, RandomPolicy, parse_available_actions, run_episode
from hero_gym.envs.webshop.env import WebShopEnv, get_task_goal
from hero_gym.policies.base import ChatRequest, Policy


@pytest.fixture(scope="module")
def env():
    return WebShopEnv()


def test_policies_satisfy_the_protocol():
    assert isinstance(OraclePolicy(), Policy) and isinstance(RandomPolicy(0), Policy)


def test_oracle_on_a_test_subset(env):
    oracle = OraclePolicy()
    rows = [run_episode(env, oracle, i, seed=i) for i in range(100)]
    mean = sum(r["reward"] for r in rows) / len(rows)
    success = sum(r["success"] for r in rows) / len(rows)
    # Upstream's option scoring compares (name, value) tuples for synthetic goals, so a few perfect purchases
    # score below 1 (see results/webshop_oracle.md); everything else must be bought right.
    assert mean > 0.98 and success >= 0.95
    assert all(r["reason"] == "purchase" and r["turns"] <= 15 for r in rows)
    assert all(r["reward_info"]["r_type"] == 1.0 and r["reward_info"]["r_att"] == 1.0 for r in rows)


def test_oracle_on_human_goals():
    env = WebShopEnv(goals="human")
    oracle = OraclePolicy()
    rows = [run_episode(env, oracle, i) for i in range(env.num_tasks)]
    assert env.num_tasks == 13 and all(r["success"] for r in rows)


def test_oracle_plan_walks_the_pages(env):
    goal = get_task_goal("synthetic", "test", 0)
    actions, how = OraclePolicy().plan(goal)
    assert how == "instruction" and actions[0].startswith("search[find me double sided")
    assert actions[-3:] == ["click[b0743jkhbv]", 'click[28" x 28"]', "click[buy now]"]


def test_oracle_with_a_fixed_goal_follows_the_turn_count(env):
    goal = get_task_goal("synthetic", "test", 5)
    oracle = OraclePolicy(goal=goal)
    actions, _ = oracle.plan(goal)
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "o"}]
    assert oracle.generate([ChatRequest(messages=msgs)])[0].text == actions[0]
    msgs += [{"role": "assistant", "content": actions[0]}, {"role": "user", "content": "o"}]
    assert oracle.generate([ChatRequest(messages=msgs)])[0].text == actions[1]


def test_oracle_without_goal_or_context_reports_an_error():
    gen = OraclePolicy().generate([ChatRequest(messages=[{"role": "user", "content": "x"}])])[0]
    assert gen.error and "context" in gen.error and gen.text == ""
    gen = OraclePolicy().generate([ChatRequest(messages=[], context={"task_index": 9999, "split": "test"})])[0]
    assert gen.error and "out of range" in gen.error


def test_random_policy_only_takes_valid_actions_and_is_seeded(env):
    def trace(seed):
        out = []
        for i in range(10):
            _, info = env.reset(options={"task_index": i})
            pol, done = RandomPolicy(seed), False
            while not done:
                a = pol.generate([ChatRequest(messages=info["messages"], context={"task_index": i})])[0].text
                _, r, term, trunc, info = env.step(a)
                assert not info["invalid"], (a, info.get("invalid_reason"))
                out.append(a)
                done = term or trunc
        return out

    a = trace(0)
    assert a == trace(0) and a != trace(1)
    assert any(x.startswith("search[") for x in a) and any(x.startswith("click[") for x in a)


def test_random_policy_needs_actions():
    gen = RandomPolicy(0).generate([ChatRequest(messages=[{"role": "user", "content": "a page"}])])[0]
    assert gen.error and "valid actions" in gen.error
    gen = RandomPolicy(0).generate([ChatRequest(messages=[], context={"valid_actions": ["click[x]"]})])[0]
    assert gen.text == "click[x]"


def test_parse_available_actions():
    msgs = [{"role": "user", "content": "obs\n\nAvailable actions:\n- click[a]\n- click[< prev]"},
            {"role": "assistant", "content": "click[a]"}]
    assert parse_available_actions(msgs) == ["click[a]", "click[< prev]"]
    assert parse_available_actions([{"role": "user", "content": "no list"}]) is None


def test_oracle_env_id_fallback_selects_human_goals():
    ctx = {"task_index": 0, "split": "test"}
    human = OraclePolicy(env_id="hero_gym/WebShopHuman-v0").generate([ChatRequest(messages=[], context=ctx)])[0]
    synth = OraclePolicy().generate([ChatRequest(messages=[], context=ctx)])[0]
    goal = get_task_goal("human", "test", 0)
    assert human.text == OraclePolicy().plan(goal)[0][0] and human.text != synth.text
