"""Simulated TauBench users: the LLM user's prompt shape and cache, and the scripted user's rules on real tasks."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero_gym import data
from hero_gym.envs.tau.users import (GREETING, STOP, TRANSFER, LLMUser, ResponseCache, ScriptedUser, User,
                                     UserSimulatorError, is_end, task_instruction)
from hero_gym.policies.base import CallablePolicy
from hero_gym.types import Generation


class RecordingPolicy:
    """Answers with a numbered line and keeps every request it receives."""

    name = "recording"

    def __init__(self, fail: str | None = None):
        self.requests = []
        self.fail = fail

    def generate(self, requests):
        self.requests.extend(requests)
        if self.fail == "raise":
            raise ConnectionError("backend down")
        if self.fail == "error":
            return [Generation(text="", error="HTTP 500", finish_reason="error") for _ in requests]
        return [Generation(text=f"  reply {len(self.requests)} seed={r.seed}\n") for r in requests]


@pytest.fixture(scope="module")
def retail_tasks():
    return data.load_json("tau-v1", "tau/v1/retail/tasks_test.json")


@pytest.fixture(scope="module")
def retail_users():
    return data.load_json("tau-v1", "tau/v1/retail/users.json")


@pytest.fixture(scope="module")
def airline():
    return (data.load_json("tau-v1", "tau/v1/airline/tasks_test.json"),
            data.load_json("tau-v1", "tau/v1/airline/users.json"))


@pytest.fixture(scope="module")
def tau2_retail():
    return data.load_json("tau2", "tau/tau2/retail/tasks.json"), data.load_json("tau2", "tau/tau2/retail/db.json")


# ------------------------------------------------------------------------------------------------ LLMUser


def test_llm_user_flips_roles_and_puts_instruction_in_system_prompt(retail_tasks):
    task, policy = retail_tasks[3], RecordingPolicy()
    user = LLMUser(policy, seed=7)
    first = user.reset(task)
    assert first == "reply 1 seed=7"  # stripped model text
    req = policy.requests[0]
    assert [m["role"] for m in req.messages] == ["system", "user"]
    assert task["instruction"] in req.messages[0]["content"]
    assert STOP in req.messages[0]["content"] and TRANSFER not in req.messages[0]["content"]
    assert req.messages[1] == {"role": "user", "content": GREETING}
    assert req.seed == 7 and req.temperature == 1.0

    second = user.step("Sure, what is your email?")
    msgs = policy.requests[1].messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2] == {"role": "assistant", "content": first}
    assert msgs[3] == {"role": "user", "content": "Sure, what is your email?"}
    assert second == "reply 2 seed=7"


def test_llm_user_tau2_prompt_has_transfer_rules(tau2_retail):
    tasks, _ = tau2_retail
    policy = RecordingPolicy()
    LLMUser(policy).reset(tasks[0], seed=1)
    system = policy.requests[0].messages[0]["content"]
    assert TRANSFER in system and "###OUT-OF-SCOPE###" in system
    assert tasks[0]["user_scenario"]["instructions"]["reason_for_call"].strip() in system


def _converse(user, task, seed, agent_lines):
    out = [user.reset(task, seed=seed)]
    out += [user.step(line) for line in agent_lines]
    return out


def test_cache_hit_reproduces_without_calling_policy(retail_tasks):
    task, lines = retail_tasks[0], ["Hello, your email please?", "Done. Anything else?"]
    cache = ResponseCache()
    p1 = RecordingPolicy()
    first = _converse(LLMUser(p1, cache=cache), task, 3, lines)
    assert len(p1.requests) == 3 and len(cache) == 3

    p2 = RecordingPolicy()
    u2 = LLMUser(p2, cache=cache)
    assert _converse(u2, task, 3, lines) == first
    assert p2.requests == [] and u2.n_cache_hits == 3

    _converse(u2, task, 4, lines)  # another seed is another conversation
    assert len(p2.requests) == 3


def test_cache_is_persisted_and_reloaded(tmp_path, retail_tasks):
    path = tmp_path / "sub" / "user_cache.jsonl"
    task, lines = retail_tasks[1], ["What is your zip code?"]
    first = _converse(LLMUser(RecordingPolicy(), cache=path), task, 0, lines)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["text"] for r in records] == first

    fresh = RecordingPolicy()
    assert _converse(LLMUser(fresh, cache=str(path)), task, 0, lines) == first
    assert fresh.requests == []


def test_corrupt_cache_file_names_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "a:1", "text": "hi"}\nnot json\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2"):
        ResponseCache(path)


@pytest.mark.parametrize("fail", ["raise", "error"])
def test_backend_failure_raises_user_simulator_error(fail, retail_tasks):
    with pytest.raises(UserSimulatorError, match="recording"):
        LLMUser(RecordingPolicy(fail=fail)).reset(retail_tasks[0])


def test_callable_policy_failure_is_a_user_simulator_error(retail_tasks):
    def broken(messages, tools):
        raise TimeoutError("slow server")

    with pytest.raises(UserSimulatorError, match="slow server"):
        LLMUser(CallablePolicy(broken)).reset(retail_tasks[0])


def test_llm_user_bad_use_is_reported():
    with pytest.raises(TypeError):
        LLMUser(object())
    with pytest.raises(RuntimeError, match="before reset"):
        LLMUser(RecordingPolicy()).step("hi")
    with pytest.raises(ValueError, match="instruction"):
        LLMUser(RecordingPolicy()).reset({"user_id": "x"})


# ------------------------------------------------------------------------------------------------ ScriptedUser


def _record(users, task):
    return users[task["user_id"]]


@pytest.mark.parametrize("index", [0, 5, 10, 20, 40, 60, 80, 100])
def test_scripted_identity_answers_come_from_the_db_record(index, retail_tasks, retail_users):
    task = retail_tasks[index]
    rec = _record(retail_users, task)
    user = ScriptedUser()
    user.reset(task, seed=0, user_record=rec)
    full_name = f"{rec['name']['first_name']} {rec['name']['last_name']}"
    reply = user.step("To verify your identity, could you tell me your full name and zip code?")
    assert full_name in reply and rec["address"]["zip"] in reply
    reply = user.step("Could you please provide your email address?")
    assert rec["email"] in reply or "don't remember" in reply


def test_scripted_gives_airline_user_id(airline):
    tasks, users = airline
    for task in tasks[:10]:
        user = ScriptedUser()
        user.reset(task, user_record=users[task["user_id"]])
        assert task["user_id"] in user.step("Can I have your user id, please?")


def test_scripted_respects_what_the_user_does_not_remember(tau2_retail):
    tasks, db = tau2_retail
    task = tasks[0]  # "You do not remember your email address."
    assert "do not remember your email" in task_instruction(task)
    rec = next(u for u in db["users"].values()
               if u["name"] == {"first_name": "Yusuf", "last_name": "Rossi"} and u["address"]["zip"] == "19122")
    user = ScriptedUser()
    user.reset(task, user_record=rec)
    reply = user.step("What is your email address?")
    assert rec["email"] not in reply and "don't remember" in reply
    assert "Yusuf Rossi" in user.step("Then please give me your name and zip code.")


def test_scripted_opening_states_goal_without_identity_or_persona(retail_tasks, retail_users):
    task = retail_tasks[0]
    rec = _record(retail_users, task)
    opening = ScriptedUser().reset(task, user_record=rec)
    assert "#W2378156" in opening and "keyboard" in opening
    assert rec["address"]["zip"] not in opening and "Your" not in opening and " you " not in opening


@pytest.mark.parametrize("prompt", [
    "I'll cancel order #W2378156 with reason 'no longer needed'. Do you want me to proceed (yes/no)?",
    "Here are the details of the exchange. Shall I go ahead?",
    "Would you like me to process this return?",
    "Please confirm that you want to cancel this order.",
])
def test_scripted_says_yes_to_confirmation(prompt, retail_tasks, retail_users):
    user = ScriptedUser()
    user.reset(retail_tasks[2], user_record=_record(retail_users, retail_tasks[2]))
    reply = user.step(prompt)
    assert reply.lower().startswith("yes") and not is_end(reply)


@pytest.mark.parametrize("message", [
    "Your exchange has been successfully processed. Is there anything else I can help you with?",
    "I'm sorry, but I cannot modify a delivered order.",
    "I am transferring you to a human agent now.",
])
def test_scripted_stops_when_done_or_refused(message, retail_tasks):
    user = ScriptedUser()
    user.reset(retail_tasks[0])
    assert STOP in user.step(message)
    assert user.step("Hello?") == STOP  # stays ended


def test_scripted_reminds_of_remaining_parts_before_stopping(retail_users):
    task = next(t for t in data.load_json("tau-v1", "tau/v1/retail/tasks_train.json")
                if t["instruction"].count("Cancel order #W") == 2)
    user = ScriptedUser()
    user.reset(task, user_record=_record(retail_users, task))
    first_done = f"Order {task['actions'][0]['kwargs']['order_id']} has been cancelled."
    assert not is_end(user.step(first_done))
    replies = [user.step("That has been done successfully.") for _ in range(len(task["actions"]))]
    assert STOP in replies[-1]


def test_scripted_tau2_transfer_token(tau2_retail):
    user = ScriptedUser()
    user.reset(tau2_retail[0][5])
    assert user.step("Let me transfer you to a human agent.") == TRANSFER


def test_scripted_stops_after_idle_turns(retail_tasks):
    user = ScriptedUser(max_idle=3)
    user.reset(retail_tasks[0], seed=1)
    replies = [user.step("Hmm.") for _ in range(3)]
    assert not any(is_end(r) for r in replies[:2]) and replies[2] == STOP


def test_scripted_is_deterministic(retail_tasks, retail_users):
    lines = ["Hmm.", "Okay.", "What is your order id?", "Hmm."]

    def run(seed):
        user = ScriptedUser(max_idle=10)
        task = retail_tasks[7]
        return [user.reset(task, seed=seed, user_record=_record(retail_users, task))] + [user.step(x) for x in lines]

    assert run(5) == run(5)
    assert {tuple(run(s)) for s in range(6)} != {tuple(run(5))}  # the seed does steer the nudges


def test_scripted_is_a_user():
    assert isinstance(ScriptedUser(), User)
    with pytest.raises(ValueError):
        ScriptedUser(max_idle=0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=300), st.sampled_from(
    ["?", "(yes/no)", "email or name?", "order id?", "#W0000000 has been cancelled", "transfer human", "\x00"])),
    min_size=1, max_size=8))
def test_scripted_never_raises_on_any_text(retail_tasks, messages):
    user = ScriptedUser()
    user.reset(retail_tasks[4], seed=0)
    for m in messages:
        reply = user.step(m)
        assert isinstance(reply, str) and reply


def test_scripted_with_env_task_objects_answers_from_their_records():
    from hero_gym.envs.tau.tasks import load_tasks, task_user_record

    checked = 0
    for version, domain, split in [("tau2", "retail", "test"), ("tau2", "airline", "test"), ("v1", "retail", "dev")]:
        for task in load_tasks(version, domain, split)[:5]:
            rec = task_user_record(task)
            if rec is None:
                continue
            user = ScriptedUser()
            user.reset(task, 0, user_record=rec)
            reply = user.step("Before we start, could you tell me your full name and zip code?")
            assert rec["name"]["first_name"] in reply and rec["address"]["zip"] in reply, (task.id, reply)
            checked += 1
    assert checked >= 10


def test_llm_user_reads_env_task_objects():
    from hero_gym.envs.tau.tasks import load_tasks

    task = load_tasks("tau2", "airline", "test")[0]
    policy = RecordingPolicy()
    LLMUser(policy).reset(task, 0)
    system = policy.requests[0].messages[0]["content"]
    assert task.user_scenario["instructions"]["reason_for_call"].strip() in system and TRANSFER in system


def test_scripted_offers_name_and_zip_when_it_forgot_the_email(retail_users):
    task = data.load_json("tau-v1", "tau/v1/retail/tasks_dev.json")[6]  # Raj Lee: several emails, unsure which
    assert "don't remember which email" in task["instruction"]
    user = ScriptedUser()
    user.reset(task, user_record=retail_users[task["user_id"]])
    assert "Raj Lee" in user.step("Please share your email, or your name and zip code, to find your account.")


@pytest.mark.parametrize("brief, spoken", [
    ("The trip you want to cancel is to Boston.", "The trip I want to cancel is to Boston."),
    ("If the agent tells you no, you give up.", "If the agent tells me no, I give up."),
    ("Your order is late and you're upset.", "My order is late and I'm upset."),
])
def test_first_person_voice(brief, spoken):
    from hero_gym.envs.tau.users_scripted import first_person

    assert first_person(brief) == spoken
