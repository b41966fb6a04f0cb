"""Hostile inputs to the tau envs: bad reset/constructor arguments, nesting that would reach the recursion limit,
huge integers, chained products in `calculate`, and messages holding several tool calls."""

import json
import sys

import pytest

from hero_gym.actions import MAX_JSON_DEPTH, format_tool_call, parse_action
from hero_gym.env import EnvArgumentError
from hero_gym.envs.tau.common_tools import calculate_v1, calculate_tau2
from hero_gym.envs.tau.env import TauEnv


class QuietUser:
    def reset(self, task, seed=None, *, user_record=None):
        return "Hi."

    def step(self, message):
        return "ok"


@pytest.fixture(scope="module")
def env():
    return TauEnv("retail", "v1", "test", user=QuietUser(), max_turns=50)


@pytest.mark.parametrize("kwargs, says", [
    ({"options": 5}, "options must be None or a dict"),
    ({"options": "task_index=3"}, "options must be None or a dict"),
    ({"options": [("task_index", 1)]}, "allowed keys: \\['task_index'\\]"),
    ({"options": {"task": 1}}, "allowed: \\['task_index'\\]"),
    ({"seed": -1}, "seed must be None or an integer >= 0"),
    ({"seed": "7"}, "seed must be None or an integer >= 0"),
    ({"seed": 1.5}, "seed must be None or an integer >= 0"),
    ({"options": {"task_index": 1.0}}, "task_index must be an integer"),
])
def test_bad_reset_arguments_raise_value_error_saying_what_is_allowed(env, kwargs, says):
    with pytest.raises(ValueError, match=says):
        env.reset(**kwargs)
    obs, info = env.reset(seed=0, options={"task_index": 1})  # the env is still usable
    assert info["task_index"] == 1


@pytest.mark.parametrize("kwargs, says", [
    ({"user": 42}, "user must be"),
    ({"user": "llm"}, "user must be"),
    ({"judge": "gpt"}, "judge must be"),
    ({"action_parser": 42}, "action_parser must be"),
    ({"action_parser": "xml"}, "unknown action parser"),
    ({"domain": 5}, "domain must be"),
    ({"domain": ["retail"]}, "domain must be"),
    ({"split": None}, "split must be"),
    ({"version": "tau2", "tau2_reward_basis": 5}, "tau2_reward_basis must be a list"),
    ({"version": "tau2", "tau2_reward_basis": "DB"}, "tau2_reward_basis must be a list"),
    ({"max_turns": 0}, "max_turns must be a positive integer"),
    ({"tools": [], "tool_schemas": []}, "tools must be a mapping"),
])
def test_bad_constructor_arguments_raise_value_error(kwargs, says):
    with pytest.raises(ValueError, match=says) as caught:
        TauEnv(**{"domain": "retail", "version": "v1", "split": "test", **kwargs})
    assert isinstance(caught.value, EnvArgumentError)
    assert isinstance(caught.value, TypeError)  # callers that caught the old TypeErrors keep working


def test_stepping_a_finished_episode_raises(env):
    env.reset(options={"task_index": 0})
    env.step(format_tool_call("transfer_to_human_agents", {"summary": "x"}))
    with pytest.raises(RuntimeError, match="finished episode"):
        env.step("hello")


def _at_stack_depth(depth, fn):
    return fn() if depth == 0 else _at_stack_depth(depth - 1, fn)


def _nested(levels):
    # alternate arrays and objects, so where a recursion limit would hit decides which word an error says
    return "".join('[{"a":' for _ in range(levels)) + "1" + "}]" * levels


@pytest.mark.parametrize("make_action", [
    lambda body: json.dumps({"name": "calculate", "arguments": {"expression": "1"}})[:-1] + ', "x": ' + body + "}",
    lambda body: '{"name": "calculate", "arguments": ' + json.dumps(body) + "}",  # nested inside a string
    lambda body: "<tool_call>" + body + "</tool_call>",
])
def test_deep_nesting_gives_the_same_fixed_observation_at_any_stack_depth(env, make_action):
    action = make_action(_nested(1500))
    assert len(action) <= env.max_action_chars
    seen = set()
    base = len(__import__("inspect").stack())
    for extra in (0, 1, 2, 3, sys.getrecursionlimit() - base - 400, sys.getrecursionlimit() - base - 399):
        env.reset(options={"task_index": 0})
        obs, r, term, trunc, info = _at_stack_depth(extra, lambda: env.step(action))
        seen.add(obs)
        assert info["invalid"] and not term
    assert len(seen) == 1, seen
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in seen.pop()


def test_huge_integers_are_an_invalid_action_with_a_fixed_message(env):
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step('{"name": "calculate", "arguments": {"expression": ' + "7" * 5000 + "}}")
    assert info["invalid"] and "integer with more than 4300 digits" in obs
    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(10_000)  # the process setting does not change what the env answers
        env.reset(options={"task_index": 0})
        assert env.step('{"name": "calculate", "arguments": {"expression": ' + "7" * 5000 + "}}")[0] == obs
    finally:
        sys.set_int_max_str_digits(old)


@pytest.mark.timeout(60)  # a hang guard, not a speed target: at the action length limit this ran for hours
@pytest.mark.parametrize("calculate", [calculate_v1, calculate_tau2])
def test_calculate_bounds_intermediate_results_not_just_powers(calculate):
    import tracemalloc

    tracemalloc.start()
    try:
        out = calculate(None, expression="*".join(["10**30000"] * 12))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 10**30000 is 12.5 KB; the running product of 12 of them (up to 150 KB, ~470 KB peak) is never built
    assert out == "Error: int too large to convert to float" and peak < 200_000, peak
    assert calculate(None, expression="*".join(["10**30000"] * 130)) == "Error: int too large to convert to float"
    assert calculate(None, expression="*".join(["9" * 4000] * 20)) == "Error: int too large to convert to float"
    # within the bound, eval's answers are kept, including big intermediates that divide back into range
    assert calculate(None, expression="10**400 * 10**400 / 10**700") == "1e+100"
    assert calculate(None, expression="(2 + 3) * 4.5 / 3") == "7.5"


def test_calculate_refuses_expressions_past_the_operator_bound_the_same_way_at_any_depth():
    expr = "+".join(["1"] * 3000)
    outs = {_at_stack_depth(d, lambda: calculate_v1(None, expression=expr)) for d in (0, 1, 300, 301)}
    assert outs == {"Error: expression too long: 2999 operators and parentheses (at most 400)"}
    assert calculate_v1(None, expression="+".join(["1"] * 400)) == "400.0"


def test_an_openai_shaped_message_with_several_calls_runs_the_first_and_counts_the_rest(env):
    env.reset(options={"task_index": 0})
    action = json.dumps({"role": "assistant", "content": "Let me look that up.", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "find_user_id_by_email",
                                                     "arguments": json.dumps({"email": "nobody@example.com"})}},
        {"id": "b", "type": "function", "function": {"name": "think", "arguments": "{}"}},
    ]})
    obs, r, term, trunc, info = env.step(action)
    assert info["tool_name"] == "find_user_id_by_email" and info["dropped_tool_calls"] == 1
    assert obs == "Error: user not found"  # the tool ran: this is not a message to the customer
    assistant = info["messages"][-2]
    assert assistant["content"] == "Let me look that up." and len(assistant["tool_calls"]) == 1
    # the Hermes form counts its extra blocks the same way
    hermes = "ok\n" + "".join(f"<tool_call>{format_tool_call('think', {'thought': str(i)})}</tool_call>" for i in range(3))
    obs, r, term, trunc, info = env.step(hermes)
    assert info["tool_name"] == "think" and info["dropped_tool_calls"] == 2


@pytest.mark.parametrize("text, why", [
    ('{"tool_calls": "abc"}', "must be a list"),
    ('{"tool_calls": [null]}', "each entry"),
    ('{"tool_calls": [{"function": "calculate"}]}', "each entry"),
])
def test_broken_openai_shaped_actions_are_invalid_not_messages(text, why):
    a = parse_action(text)
    assert a.kind == "invalid" and why in a.error
