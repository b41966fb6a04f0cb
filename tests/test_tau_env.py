"""TauEnv behaviour: observations, errors, info, termination, budget, isolation, determinism, tau2 rewards."""

import json

import pytest

from hero_gym.actions import format_tool_call
from hero_gym.envs.tau.baselines import OraclePolicy, RandomToolPolicy, oracle_script
from hero_gym.envs.tau.env import TauEnv
from hero_gym.envs.tau.users import UserSimulatorError
from hero_gym.policies.base import CallablePolicy, ChatRequest
from hero_gym.registry import make

ORDER = "#W2378156"  # retail test task 0's order (Yusuf Rossi, delivered)


class StubUser:
    """Says hello, answers 'ok', and stops when the agent says 'bye'."""

    def __init__(self, stop_word="bye", end_token="###STOP###"):
        self.stop_word, self.end_token, self.seen = stop_word, end_token, []

    def reset(self, task, seed=None, *, user_record=None):
        self.seen = []
        self.record = user_record
        return f"Hello, I am {task.user_id}."

    def step(self, message):
        self.seen.append(message)
        return f"Thanks. {self.end_token}" if self.stop_word in message else "ok"


class FailingUser(StubUser):
    def step(self, message):
        raise UserSimulatorError("backend down")


def call(name, **kwargs):
    return format_tool_call(name, kwargs)


@pytest.fixture
def env():
    return TauEnv("retail", "v1", "test", user=StubUser())


def play(env, actions):
    out = None
    for a in actions:
        out = env.step(a)
        if out[2] or out[3]:
            break
    return out


def test_reset_observation_and_info(env):
    obs, info = env.reset(options={"task_index": 0})
    assert obs == "Hello, I am yusuf_rossi_9620."
    assert info["messages"][0] == {"role": "system", "content": info["policy"]}
    assert info["policy"].startswith("# Retail agent policy")
    assert info["messages"][1] == {"role": "user", "content": obs}
    assert len(info["tools"]) == 16 and info["task_id"] == "test-0" and info["termination_reason"] is None
    assert env.user.record["name"] == {"first_name": "Yusuf", "last_name": "Rossi"}  # the DB record reaches the user


def test_tool_call_observation_and_openai_messages(env):
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step(call("get_order_details", order_id=ORDER))
    order = json.loads(obs)
    assert order["order_id"] == ORDER and order["user_id"] == "yusuf_rossi_9620"
    assert (r, term, trunc, info["invalid"]) == (0.0, False, False, False)
    asst, tool = info["messages"][-2:]
    assert asst["role"] == "assistant" and asst["tool_calls"][0]["function"]["name"] == "get_order_details"
    assert json.loads(asst["tool_calls"][0]["function"]["arguments"]) == {"order_id": ORDER}
    assert tool == {"role": "tool", "tool_call_id": asst["tool_calls"][0]["id"], "name": "get_order_details", "content": obs}


def test_hermes_and_openai_actions(env):
    env.reset(options={"task_index": 0})
    obs, *_ = env.step(f'<tool_call>{{"name": "get_order_details", "arguments": {{"order_id": "{ORDER}"}}}}</tool_call>')
    assert json.loads(obs)["order_id"] == ORDER
    msg = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "find_user_id_by_email", "arguments": json.dumps({"email": "nope@x.com"})}}]}
    obs, *_ = env.step_openai(msg)
    assert obs == "Error: user not found"


@pytest.mark.parametrize(
    "action, expected_obs",
    [
        (call("nonexistent_tool"), "Unknown action nonexistent_tool"),
        (call("get_order_details", order_id=ORDER, foo=1), "Error: GetOrderDetails.invoke() got an unexpected keyword argument 'foo'"),
        (call("get_order_details"), "Error: GetOrderDetails.invoke() missing 1 required positional argument: 'order_id'"),
    ],
)
def test_upstream_error_observations(env, action, expected_obs):
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step(action)
    assert obs == expected_obs
    assert info["invalid"] and info["invalid_reason"] and not term and r == 0.0
    assert all(not t.touched() for t in env.db.values())


def test_wrong_types_and_bad_enum_are_rejected_before_the_tool_runs(env):
    env.reset(options={"task_index": 0})
    obs, _, _, _, info = env.step(call("cancel_pending_order", order_id=["#W1"], reason="no longer needed"))
    assert info["invalid"] and "must be of type string, got array" in obs
    obs, _, _, _, info = env.step(call("cancel_pending_order", order_id="#W4082615", reason="bored"))
    assert info["invalid"] and "must be one of" in obs
    assert all(not t.touched() for t in env.db.values())


def test_broken_json_and_oversize_actions_are_invalid_and_recorded(env):
    env.reset(options={"task_index": 0})
    obs, _, _, _, info = env.step('<tool_call>{"name": "get_order_details", "arguments": {</tool_call>')
    assert info["invalid"] and obs.startswith("Error: malformed JSON inside <tool_call>")
    assert info["messages"][-1] == {"role": "user", "content": obs}
    huge = "x" * (env.max_action_chars + 1)
    obs, _, _, _, info = env.step(huge)
    assert info["invalid"] and "limit" in obs and len(info["messages"][-2]["content"]) == env.max_action_chars
    assert env.user.seen == []  # nothing reached the customer


def test_messages_go_to_the_user_and_stop_ends_with_reward(env):
    env.reset(options={"task_index": 0})
    obs, r, term, _, info = env.step("How can I help?")
    assert obs == "ok" and not term and env.user.seen == ["How can I help?"]
    obs, r, term, trunc, info = env.step("bye")
    assert term and not trunc and info["termination_reason"] == "user_stop"
    # nothing was done, task 0 needs an exchange: reward 0 with the differing record named
    assert r == 0.0 and {"table": "orders", "key": ORDER} in info["reward_info"]["db_diff"]


def test_transfer_tool_ends_the_episode():
    env = TauEnv("retail", "v1", "test", user=StubUser())
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step(call("transfer_to_human_agents", summary="help"))
    assert obs == "Transfer successful" and term and info["termination_reason"] == "transfer_to_human"
    assert "reward_info" in info and r == 0.0


class BuggyUser(StubUser):
    def step(self, message):
        return {}["missing"]


def test_user_failure_ends_with_error():
    env = TauEnv("retail", "v1", "test", user=FailingUser())
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step("hello")
    assert term and r == 0.0 and info["termination_reason"] == "error" and "backend down" in info["error"]
    env = TauEnv("retail", "v1", "test", user=BuggyUser())
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step("hello")
    assert term and info["termination_reason"] == "error" and "KeyError" in info["error"]


def test_a_failing_custom_parser_is_an_invalid_action():
    from hero_gym.actions import Action

    def parser(text):
        raise ValueError("cannot read this")

    env = TauEnv("retail", "v1", "test", user=StubUser(), action_parser=parser)
    env.reset(options={"task_index": 0})
    obs, r, term, trunc, info = env.step("anything")
    assert info["invalid"] and "cannot read this" in obs and not term
    for bad in (lambda t: "not an Action", lambda t: Action(kind="tool", name=["x"]), lambda t: Action(kind="message", content=None)):
        env = TauEnv("retail", "v1", "test", user=StubUser(), action_parser=bad)
        env.reset(options={"task_index": 0})
        obs, r, term, trunc, info = env.step("anything")
        assert info["invalid"] and obs.startswith("Error: ") and not term


def test_budget_truncates_with_zero_reward():
    env = TauEnv("retail", "v1", "test", user=StubUser(), max_turns=3)
    env.reset(options={"task_index": 0})
    script = oracle_script(env.task)  # gold would succeed, but needs more than 3 actions
    out = play(env, script)
    obs, r, term, trunc, info = out
    assert trunc and not term and r == 0.0 and info["termination_reason"] == "turn_budget"
    assert "budget" in info["reward_info"]["reason"] and not info["success"]


def test_bad_task_index_split_domain_version():
    env = TauEnv("retail", "v1", "dev")
    for bad in (-1, 20, "0", None.__class__):
        with pytest.raises(ValueError):
            env.reset(options={"task_index": bad})
    with pytest.raises(ValueError):
        TauEnv("retail", "v1", "test", task_index=115)
    with pytest.raises(ValueError, match="no split"):
        TauEnv("airline", "v1", "train")
    with pytest.raises(ValueError):
        TauEnv("telecom", "v1", "test")
    with pytest.raises(ValueError):
        TauEnv("retail", "v2", "test")
    with pytest.raises(ValueError):
        TauEnv("retail", "v1", "test", tau2_reward_basis=["DB"])
    with pytest.raises(TypeError):
        TauEnv("retail", "v1", "test", user=42)
    with pytest.raises(ValueError, match="unknown tau2 reward component"):
        TauEnv("retail", "tau2", "test", tau2_reward_basis=["DB", "VIBES"])
    with pytest.raises(TypeError):
        TauEnv("retail", "tau2", "test", judge="gpt")


def _episode(env, index, policy, seed):
    obs, info = env.reset(seed=seed, options={"task_index": index})
    trace = [obs]
    while True:
        req = ChatRequest(messages=info["messages"], tools=info["tools"], seed=seed,
                          context={"env_id": "hero_gym/TauRetail-v0", "task_index": index, "split": "test"})
        text = policy.generate([req])[0].text
        obs, r, term, trunc, info = env.step(text)
        trace.append(obs)
        if term or trunc:
            return trace, r, info["messages"], env.db.snapshot()


def test_episodes_are_isolated():
    """Task A then task B gives exactly what task B alone gives (and A's writes are gone)."""
    oracle = OraclePolicy()
    env = make("hero_gym/TauRetail-v0").unwrapped
    alone = _episode(env, 5, oracle, seed=1)
    env2 = make("hero_gym/TauRetail-v0").unwrapped
    a = _episode(env2, 0, oracle, seed=1)
    assert a[1] == 1.0 and any(v is not None for t in a[3].values() for v in t.values())
    after = _episode(env2, 5, oracle, seed=1)
    assert after[:3] == alone[:3] and after[3] == alone[3]
    # the same task again right after its own writes still scores 1.0
    assert _episode(env2, 0, oracle, seed=1)[1] == 1.0


def test_same_seed_same_policy_same_episode():
    pol = RandomToolPolicy(seed=7)
    runs = []
    for _ in range(2):
        env = TauEnv("retail", "v1", "test", max_turns=12)  # default ScriptedUser
        runs.append(_episode(env, 3, pol, seed=11))
    assert runs[0] == runs[1]
    other = _episode(TauEnv("retail", "v1", "test", max_turns=12), 3, RandomToolPolicy(seed=8), seed=11)
    assert other[2] != runs[0][2]


def test_seeded_task_draw_is_reproducible():
    env = TauEnv("airline", "v1", "test", user=StubUser())
    draws = [env.reset(seed=s)[1]["task_index"] for s in (1, 2, 3)]
    again = [env.reset(seed=s)[1]["task_index"] for s in (1, 2, 3)]
    assert draws == again and len(set(draws + [env.reset(seed=4)[1]["task_index"]])) > 1


def test_render_ansi_and_step_after_end():
    env = TauEnv("retail", "v1", "test", user=StubUser(), render_mode="ansi")
    env.reset(options={"task_index": 0})
    env.step("bye")
    assert env.render() == "Thanks. ###STOP###"
    with pytest.raises(RuntimeError):
        env.step("again")


def test_custom_parser_and_stand_in_tools():
    calls = []

    def echo(db, text):
        calls.append(text)
        return text.upper()

    schemas = [{"type": "function", "function": {"name": "echo", "parameters": {
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}]
    from hero_gym.actions import Action

    env = TauEnv("retail", "v1", "test", user=StubUser(), tools={"echo": echo}, tool_schemas=schemas,
                 action_parser=lambda s: Action(kind="tool", name="echo", arguments={"text": s}))
    env.reset(options={"task_index": 0})
    assert env.step("hi")[0] == "HI" and calls == ["hi"]
    with pytest.raises(ValueError):
        TauEnv("retail", "v1", "test", tools={"echo": echo})


# ---------------------------------------------------------------------------------------------------------- tau2
def _tau2_nl_task_env(**kw):
    env = TauEnv("retail", "tau2", "base", user=StubUser(), **kw)
    idx = next(t.index for t in env.tasks if t.nl_assertions and "NL_ASSERTION" in t.reward_basis)
    return env, idx


def _gold_then_bye(env, idx):
    env.reset(options={"task_index": idx})
    script = oracle_script(env.task)
    return play(env, [a for a in script if a.startswith("{")] + ["bye " + " ".join(env.task.outputs)])


def test_tau2_nl_assertion_without_judge_is_not_evaluated():
    env, idx = _tau2_nl_task_env()
    assert env.policy_text == env.reset(options={"task_index": idx})[1]["messages"][0]["content"]
    obs, r, term, _, info = _gold_then_bye(env, idx)
    ri = info["reward_info"]
    assert term and r == 1.0 and ri["not_evaluated"] == ["NL_ASSERTION"] and ri["components"]["DB"] == 1.0
    assert ri["components"]["NL_ASSERTION"] is None and "judge" in ri["reason"]


@pytest.mark.parametrize("met, expected", [(True, 1.0), (False, 0.0), (None, 0.0)])
def test_tau2_judge_grades_nl_assertions(met, expected):
    seen = []

    def judge_fn(messages, tools):
        seen.append(messages)
        n = messages[-1]["content"].split("Expected outcomes:\n", 1)[1].count("\n- ") + 1
        if met is None:
            return "I think it went fine."
        return json.dumps({"results": [{"expectedOutcome": "x", "reasoning": "r", "metExpectation": met}] * n})

    env, idx = _tau2_nl_task_env(judge=CallablePolicy(judge_fn, name="judge"))
    obs, r, term, _, info = _gold_then_bye(env, idx)
    assert r == expected and info["reward_info"]["not_evaluated"] == []
    assert "get_" in seen[0][-1]["content"] or "tool call" in seen[0][-1]["content"]  # the judge saw the transcript
    if met is None:
        assert "not the expected JSON" in info["reward_info"]["nl_assertions"]["error"]


def test_tau2_reward_basis_override_and_communicate():
    env = TauEnv("airline", "tau2", "base", user=StubUser())
    idx = next(t.index for t in env.tasks if t.outputs)
    env.reset(options={"task_index": idx})
    calls = [a for a in oracle_script(env.task) if a.startswith("{")]
    obs, r, term, _, info = play(env, calls + ["bye, all done"])  # outputs never said
    assert term and r == 0.0 and info["reward_info"]["components"] == {"DB": 1.0, "COMMUNICATE": 0.0}
    assert info["reward_info"]["missing_outputs"] == list(env.task.outputs)
    env2 = TauEnv("airline", "tau2", "base", user=StubUser(), tau2_reward_basis=["DB"])
    env2.reset(options={"task_index": idx})
    obs, r, term, _, info = play(env2, calls + ["bye, all done"])
    assert r == 1.0 and info["reward_info"]["reward_basis"] == ["DB"]


def test_tau2_user_transfer_and_out_of_scope_tokens():
    for token, reason in (("###TRANSFER###", "transfer_to_human"), ("###OUT-OF-SCOPE###", "out_of_scope")):
        env = TauEnv("retail", "tau2", "test", user=StubUser(end_token=token))
        env.reset(options={"task_index": 0})
        assert env.step("bye")[4]["termination_reason"] == reason
    # v1 users only end with ###STOP###
    env = TauEnv("retail", "v1", "test", user=StubUser(end_token="###TRANSFER###"))
    env.reset(options={"task_index": 0})
    assert not env.step("bye")[2]


def test_oracle_and_random_policy_errors_are_reported_not_raised():
    gen = OraclePolicy().generate([ChatRequest(messages=[], context={})])[0]
    assert gen.error and "env_id" in gen.error
    gen = OraclePolicy().generate([ChatRequest(messages=[], context={"env_id": "hero_gym/TauRetail-v0", "task_index": 999})])[0]
    assert gen.error and "out of range" in gen.error
    gen = RandomToolPolicy().generate([ChatRequest(messages=[], tools=[], context={})])[0]
    assert gen.text and not gen.error


def test_a_policy_as_user_is_wrapped_in_llm_user():
    prompts = []

    def customer(messages, tools):
        prompts.append(messages)
        return "I want to cancel my order." if len(messages) <= 2 else "Great, thanks! ###STOP###"

    env = TauEnv("retail", "v1", "test", user=CallablePolicy(customer, name="customer"))
    obs, info = env.reset(seed=0, options={"task_index": 0})
    assert obs == "I want to cancel my order."
    assert "Yusuf Rossi" in prompts[0][0]["content"]  # the instruction reached the user model's system prompt
    obs, r, term, trunc, info = env.step("Done, anything else?")
    assert term and info["termination_reason"] == "user_stop" and prompts[-1][-1]["content"] == "Done, anything else?"


def test_task_helpers_need_a_reset():
    env = TauEnv("retail", "v1", "dev", user=StubUser())
    with pytest.raises(RuntimeError):
        env.task
    with pytest.raises(RuntimeError):
        env.compute_reward()
    assert env.gold_actions(0) == list(env.tasks[0].actions)
    with pytest.raises(ValueError):
        env.gold_actions(20)
