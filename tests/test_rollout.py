"""The rollout engine on a toy env (defined here) and on the real envs: batching, seeds, token layout, failures."""

import sys

import pytest
import torch

from hero_gym import chat
from hero_gym.env import TextEnv
from hero_gym.policies.base import CallablePolicy, ChatRequest
from hero_gym.policies.hf import HFPolicy
from hero_gym.policies.models import tiny_model
from hero_gym.policies.scripted import ScriptedPolicy, load_policy
from hero_gym.rollout import EpisodeSpec, request_seed, run_episodes
from hero_gym.types import Generation

SECRETS = ["apple", "pear", "plum", "fig", "kiwi"]
TOOLS = [{"type": "function", "function": {"name": "hint", "description": "Get a hint",
                                           "parameters": {"type": "object", "properties": {}}}}]


class GuessEnv(TextEnv):
    """Say the task's secret word to win. Keeps an OpenAI-style conversation in info like the real envs."""

    default_max_turns = 3

    def __init__(self, split="test", with_messages=True, **kw):
        self.split, self.with_messages = split, with_messages
        super().__init__(**kw)

    def _num_tasks(self):
        return len(SECRETS)

    def _reset_task(self, i):
        obs = f"Guess the word for task {i}."
        self.messages = [{"role": "system", "content": "You play a guessing game."}, {"role": "user", "content": obs}]
        return obs, self._extra()

    def _extra(self, **kw):
        return {"messages": list(self.messages), "tools": TOOLS, **kw} if self.with_messages else dict(kw)

    def _step_turn(self, action):
        self.messages.append({"role": "assistant", "content": action})
        if SECRETS[self.task_index] in action:
            obs, reward, done = "Correct!", 1.0, True
        else:
            obs, reward, done = f"No. Try again ({len(action)} chars).", 0.0, False
        self.messages.append({"role": "user", "content": obs})
        extra = self._extra(invalid=not action.strip())
        if not action.strip():
            extra["invalid_reason"] = "empty action"
        return obs, reward, done, None, extra


def guess_env(**kw):
    return GuessEnv(**kw)


@pytest.fixture(scope="module")
def tiny_policy():
    model, tok = tiny_model()
    return HFPolicy(model, tok, batch_size=8)


def _specs(n, seed0=100):
    return [EpisodeSpec(task_index=i % len(SECRETS), attempt=i // len(SECRETS), seed=seed0 + i) for i in range(n)]


# ----- outcomes with scripted policies -------------------------------------------------------------------------

def test_scripted_episodes_succeed_or_run_out_of_turns():
    trajs = run_episodes(guess_env, ScriptedPolicy(["hello", "apple"]), _specs(2))
    win, lose = trajs
    assert (win.reward, win.success, win.terminated, win.truncated, win.termination_reason) == (1.0, True, True, False,
                                                                                             "success")
    assert [t.action for t in win.turns] == ["hello", "apple"] and win.env_steps == 2
    assert (lose.reward, lose.success, lose.truncated, lose.termination_reason) == (0.0, False, True, "turn_budget")
    assert lose.num_turns == 3 and lose.task_index == 1
    assert [m["role"] for m in win.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert win.initial_observation == "Guess the word for task 0." and win.tools == TOOLS
    assert win.prompt_token_ids == [] and win.turns[0].action_token_ids == []  # no tokenizer, no ids
    assert win.wall_time_s >= win.env_time_s > 0


def test_invalid_actions_are_flagged_on_turns():
    (traj,) = run_episodes(guess_env, ScriptedPolicy([""]), _specs(1), env_kwargs={"max_turns": 1})
    assert traj.turns[0].invalid and traj.turns[0].info["invalid_reason"] == "empty action"


def test_requests_carry_context_and_derived_seeds():
    seen = []

    class Recorder:
        name = "rec"

        def generate(self, requests):
            seen.extend(requests)
            return [Generation(text="x") for _ in requests]

    specs = [EpisodeSpec(2, attempt=1, seed=7, split="test"), EpisodeSpec(3, seed=None)]
    run_episodes(guess_env, Recorder(), specs, env_kwargs={"max_turns": 2}, max_new_tokens=9, temperature=0.5)
    assert len(seen) == 4
    first = [r for r in seen if r.context["task_index"] == 2]
    assert [r.context["turn"] for r in first] == [0, 1]
    assert first[0].context == {"env_id": "guess_env", "task_index": 2, "split": "test", "seed": 7, "attempt": 1,
                                "turn": 0}
    assert [r.seed for r in first] == [request_seed(7, 0), request_seed(7, 1)]
    assert request_seed(7, 0) != request_seed(7, 1) != request_seed(8, 1)
    assert all(r.seed is None for r in seen if r.context["task_index"] == 3)
    assert all(r.max_new_tokens == 9 and r.temperature == 0.5 and r.tools == TOOLS for r in seen)
    assert first[1].messages[-2] == {"role": "assistant", "content": "x"}


def test_generation_error_ends_only_that_episode_and_callbacks_fire():
    def act(messages, tools):
        if "task 1" in messages[1]["content"]:
            raise RuntimeError("backend down")
        return "fig"

    done = []
    trajs = run_episodes(guess_env, CallablePolicy(act), _specs(4), on_episode=done.append, batch_size=2)
    assert trajs[1].termination_reason == "error" and "backend down" in trajs[1].error and not trajs[1].success
    assert trajs[3].success and trajs[0].termination_reason == "turn_budget"
    assert sorted(id(t) for t in done) == sorted(id(t) for t in trajs)


def test_a_policy_that_raises_fails_episodes_but_returns():
    class Broken:
        name = "broken"

        def generate(self, requests):
            raise ValueError("kaput")

    trajs = run_episodes(guess_env, Broken(), _specs(3))
    assert all(t.termination_reason == "error" and "kaput" in t.error for t in trajs)


def test_env_failure_is_recorded():
    class Exploding(GuessEnv):
        def _step_turn(self, action):
            raise OSError("disk gone")

    (traj,) = run_episodes(Exploding, ScriptedPolicy(["a"]), _specs(1))
    assert traj.termination_reason == "error" and "env step failed: OSError: disk gone" == traj.error


def test_results_keep_spec_order_and_envs_are_reused():
    made = []

    def factory(**kw):
        made.append(1)
        return GuessEnv(**kw)

    specs = _specs(7)
    trajs = run_episodes(factory, ScriptedPolicy(["kiwi", "plum", "apple"]), specs, batch_size=2)
    assert [t.task_index for t in trajs] == [s.task_index for s in specs]
    assert [t.seed for t in trajs] == [s.seed for s in specs]
    assert len(made) == 2  # never more envs than live episodes


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="EpisodeSpec"):
        run_episodes(guess_env, ScriptedPolicy(["a"]), [0])
    with pytest.raises(ValueError, match="task_index"):
        EpisodeSpec(-1)
    with pytest.raises(ValueError, match="seed"):
        EpisodeSpec(0, seed="7")
    with pytest.raises(ValueError, match="executor"):
        run_episodes(guess_env, ScriptedPolicy(["a"]), _specs(1), executor="dask")
    with pytest.raises(ValueError, match="unknown environment"):
        run_episodes("hero_gym/NoSuchEnv-v0", ScriptedPolicy(["a"]), _specs(1))
    with pytest.raises(TypeError, match="generate"):
        run_episodes(guess_env, lambda m, t: "a", _specs(1))
    with pytest.raises(ValueError, match="batch_size"):
        run_episodes(guess_env, ScriptedPolicy(["a"]), _specs(1), batch_size=0)
    assert run_episodes(guess_env, ScriptedPolicy(["a"]), []) == []


def test_ray_executor_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"hero-gym\[ray\]"):
        run_episodes(guess_env, ScriptedPolicy(["a"]), _specs(1), executor="ray")


# ----- token-exact rollouts with a model -----------------------------------------------------------------------

def _check_layout(traj, tok):
    ids = traj.token_ids()
    mask = traj.agent_mask()
    assert len(mask) == len(ids) and sum(mask) == sum(len(t.action_token_ids) for t in traj.turns) == traj.tokens_out
    # the ids are the conversation: decoding them gives the template rendering of the final messages
    assert tok.decode(ids, skip_special_tokens=False) == chat.render(tok, traj.messages, traj.tools)
    assert traj.prompt_token_ids == chat.prompt_ids(tok, traj.messages[:2], traj.tools)
    for (start, end), turn in zip(traj.turn_spans(), traj.turns):
        assert ids[start:end] == turn.action_token_ids
        span_text = tok.decode(ids[start:end], skip_special_tokens=False)
        assert span_text in (turn.action, turn.action + "<|im_end|>")
        assert len(turn.action_logprobs) == end - start
        assert all(mask[start:end]) and not any(mask[end:end + len(turn.obs_token_ids)])


def test_hf_rollout_keeps_token_exact_turns(tiny_policy):
    trajs = run_episodes(guess_env, tiny_policy, _specs(3), max_new_tokens=8)
    for traj in trajs:
        assert traj.num_turns == 3 and traj.termination_reason == "turn_budget" and traj.error is None
        _check_layout(traj, tiny_policy.tokenizer)
        assert traj.tokens_in > traj.tokens_out > 0


def test_env_without_messages_still_gets_token_ids(tiny_policy):
    (traj,) = run_episodes(guess_env, tiny_policy, _specs(1), env_kwargs={"with_messages": False}, max_new_tokens=6)
    assert [m["role"] for m in traj.messages] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    tok = tiny_policy.tokenizer
    assert tok.decode(traj.token_ids(), skip_special_tokens=False) == chat.render(tok, traj.messages)


def test_batched_equals_sequential_and_seeds_reproduce(tiny_policy):
    specs = _specs(5)
    batched = run_episodes(guess_env, tiny_policy, specs, max_new_tokens=8)
    single = run_episodes(guess_env, tiny_policy, specs, max_new_tokens=8, batch_size=1)
    again = run_episodes(guess_env, tiny_policy, specs[::-1], max_new_tokens=8, batch_size=2)[::-1]
    for a, b, c in zip(batched, single, again):
        assert a.token_ids() == b.token_ids() == c.token_ids()
        assert [t.action for t in a.turns] == [t.action for t in b.turns]
        for ta, tb in zip(a.turns, b.turns):
            assert ta.action_logprobs == pytest.approx(tb.action_logprobs, abs=1e-5)
    other = run_episodes(guess_env, tiny_policy, _specs(5, seed0=999), max_new_tokens=8)
    assert all(a.token_ids() != o.token_ids() for a, o in zip(batched, other))


def test_stop_token_boundary_goes_to_the_observation():
    model, tok = tiny_model()
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    handle = model.lm_head.register_forward_hook(lambda m, i, o: o + 100 * torch.nn.functional.one_hot(
        torch.tensor(eot), o.shape[-1]).to(o.dtype))
    try:
        (traj,) = run_episodes(guess_env, HFPolicy(model, tok), _specs(1), env_kwargs={"max_turns": 2})
    finally:
        handle.remove()
    first = traj.turns[0]
    assert first.action_token_ids == [eot] and first.action == ""
    # the newline the template writes after <|im_end|> is not the model's: it opens the observation ids
    assert tok.decode(first.obs_token_ids).startswith("\n<|im_start|>user\nNo. Try again")
    _check_layout(traj, tok)


def test_template_that_rewrites_history_uses_the_fallback(tiny_policy):
    from hero_gym.policies.models import tiny_tokenizer

    tok = tiny_tokenizer()
    # like Qwen3: reasoning is dropped from assistant messages that are not the last one
    tok.chat_template = tok.chat_template.replace(
        "<|im_start|>assistant\\n{{ message.content or '' }}".replace("\\n", "\n"),
        "<|im_start|>assistant\n{{ (message.content or '').split('</think>')[-1] if not loop.last "
        "else (message.content or '') }}")
    assert "split('</think>')" in tok.chat_template
    policy = HFPolicy(tiny_policy.model, tok)
    before = chat.FALLBACK_COUNT
    with pytest.warns(RuntimeWarning, match="prefix property"):
        (traj,) = run_episodes(guess_env, ScriptedTokens(policy, "<think>hmm</think>no"), _specs(1),
                               env_kwargs={"max_turns": 2})
    assert chat.FALLBACK_COUNT > before and traj.error is None
    obs = tok.decode(traj.turns[0].obs_token_ids)
    assert obs.startswith("\n<|im_start|>user\nNo. Try again") and obs.endswith("<|im_start|>assistant\n")


class ScriptedTokens:
    """A token-level scripted policy: always answers `text` (tokenized) — lets a test choose what was generated."""

    def __init__(self, hf, text):
        self.tokenizer, self.model, self.name = hf.tokenizer, hf.model, "scripted-tokens"
        self.ids = chat.encode(hf.tokenizer, text) + [hf.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.text = text

    def generate(self, requests):
        return [Generation(text=self.text, token_ids=list(self.ids), logprobs=[0.0] * len(self.ids),
                           prompt_token_ids=r.prompt_token_ids) for r in requests]


def test_broken_template_fails_the_episode_clearly(tiny_policy):
    from hero_gym.policies.models import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}"
    policy = HFPolicy(tiny_policy.model, tok)
    with pytest.warns(RuntimeWarning):
        (traj,) = run_episodes(guess_env, ScriptedTokens(policy, "no"), _specs(1))
    assert traj.termination_reason == "error" and "token bookkeeping failed" in traj.error


# ----- real environments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["hero_gym/TauRetail-v0", "hero_gym/WebShop-v0"])
def test_oracle_solves_real_envs_through_the_rollout(env_id):
    policy = load_policy("oracle", env_id=env_id)
    trajs = run_episodes(env_id, policy, [EpisodeSpec(i, seed=i) for i in range(3)])
    assert all(t.success and t.reward == 1.0 and t.error is None for t in trajs), [t.error for t in trajs]
    assert all(t.split == "test" and t.env_steps == t.num_turns > 0 for t in trajs)


def test_tool_calls_on_tau_retail_keep_tokens_exact(tiny_policy):
    # A scripted token-level policy (a real forward pass over TauRetail's ~8k-token prompt is too slow for a test):
    # what matters here is the bookkeeping around the env's tool_calls and tool messages.
    call = '{"name": "find_user_id_by_email", "arguments": {"email": "nobody@example.com"}}'
    policy = ScriptedTokens(tiny_policy, call)
    (traj,) = run_episodes("hero_gym/TauRetail-v0", policy, [EpisodeSpec(0, seed=1)], env_kwargs={"max_turns": 2})
    tok = tiny_policy.tokenizer
    assert traj.error is None and traj.num_turns == 2 and traj.tools and traj.termination_reason == "turn_budget"
    assert traj.prompt_token_ids == chat.prompt_ids(tok, traj.messages[:2], traj.tools)
    first = traj.turns[0]
    assert traj.messages[2]["tool_calls"][0]["function"]["name"] == "find_user_id_by_email"
    assert traj.messages[3]["role"] == "tool"
    expected = "\n<|im_start|>user\n<tool_response>\n" + traj.messages[3]["content"] + \
        "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(first.obs_token_ids, skip_special_tokens=False) == expected
    ids = traj.token_ids()
    for (start, end), turn in zip(traj.turn_spans(), traj.turns):
        assert tok.decode(ids[start:end], skip_special_tokens=False) == call + "<|im_end|>"


def test_tiny_model_on_webshop(tiny_policy):
    trajs = run_episodes("hero_gym/WebShop-v0", tiny_policy, [EpisodeSpec(0, seed=1), EpisodeSpec(1, seed=2)],
                         env_kwargs={"max_turns": 2}, max_new_tokens=8)
    for traj in trajs:
        assert traj.error is None and traj.num_turns == 2 and traj.termination_reason == "turn_budget"
        _check_layout(traj, tiny_policy.tokenizer)


def test_a_prompt_too_long_for_the_model_is_an_episode_error(tiny_policy):
    (traj,) = run_episodes("hero_gym/TauRetail-v0", tiny_policy, [EpisodeSpec(0, seed=1)], max_new_tokens=8)
    assert traj.termination_reason == "error" and "does not fit the model's context of 4096" in traj.error


def test_a_conversation_that_outgrows_the_context_is_truncated_not_an_error(tiny_policy):
    (first,) = run_episodes("hero_gym/WebShop-v0", tiny_policy, [EpisodeSpec(0, seed=1)],
                            env_kwargs={"max_turns": 1}, max_new_tokens=8)
    old = tiny_policy.max_context
    tiny_policy.max_context = len(first.prompt_token_ids) + 9  # turn 1 fits; turn 2 adds a whole page and does not
    try:
        (traj,) = run_episodes("hero_gym/WebShop-v0", tiny_policy, [EpisodeSpec(0, seed=1)],
                               env_kwargs={"max_turns": 3}, max_new_tokens=8)
    finally:
        tiny_policy.max_context = old
    assert traj.error is None and traj.num_turns == 1
    assert traj.termination_reason == "context_limit" and traj.truncated and traj.reward == 0.0 and not traj.success
    assert "does not fit the model's context" in traj.reward_info["context_limit"]


# ----- reuse of keys/values across turns ---------------------------------------------------------------------

def test_prefix_cache_gives_the_same_rollouts_and_reuses_tokens(tiny_policy):
    model, tok = tiny_policy.model, tiny_policy.tokenizer
    cached = HFPolicy(model, tok, batch_size=3, prefix_cache_mb=64)
    specs = _specs(5)
    plain = run_episodes(guess_env, tiny_policy, specs, max_new_tokens=8, env_kwargs={"max_turns": 4})
    fast = run_episodes(guess_env, cached, specs, max_new_tokens=8, env_kwargs={"max_turns": 4})
    for a, b in zip(plain, fast):
        assert a.token_ids() == b.token_ids()
        for ta, tb in zip(a.turns, b.turns):
            assert ta.action_logprobs == pytest.approx(tb.action_logprobs, abs=1e-4)
    kv = cached.prefix_cache
    assert kv.hits == 5 * 3 and kv.misses == 5  # every turn after the first reuses its conversation
    first_turn_prompts = sum(len(t.prompt_token_ids) for t in fast)
    assert kv.reused_tokens > first_turn_prompts
    assert 0 < kv.bytes <= kv.max_bytes and len(kv.entries) == 5


def test_prefix_cache_is_dropped_when_weights_change(tiny_policy):
    model, tok = tiny_model()
    cached = HFPolicy(model, tok, prefix_cache_mb=64)
    run_episodes(guess_env, cached, _specs(2), max_new_tokens=4, env_kwargs={"max_turns": 2})
    assert cached.prefix_cache.entries
    with torch.no_grad():
        model.model.norm.weight.mul_(2.0)  # what an optimizer step does: an in-place update
    ids = chat.prompt_ids(tok, [{"role": "user", "content": "x"}])
    cached.generate([ChatRequest([], prompt_token_ids=ids, max_new_tokens=2, seed=0)])
    assert len(cached.prefix_cache.entries) == 1 and cached.prefix_cache.misses == 3


def test_prefix_cache_budget_and_bad_models(tiny_policy):
    from hero_gym.policies.kv_cache import PrefixKVCache

    small = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, prefix_cache_mb=0.05)
    run_episodes(guess_env, small, _specs(4), max_new_tokens=8, env_kwargs={"max_turns": 2})
    assert small.prefix_cache.bytes <= small.prefix_cache.max_bytes
    with pytest.raises(ValueError, match="max_mb"):
        PrefixKVCache(-1)
    model, tok = tiny_model()
    model.config.layer_types = ["sliding_attention"] * model.config.num_hidden_layers
    with pytest.raises(ValueError, match="full attention"):
        HFPolicy(model, tok, prefix_cache_mb=8)


def test_rows_leave_the_batch_as_they_finish_and_their_keys_are_kept_right(tiny_policy):
    # Budgets 2, 5 and 9 in one batch: the batch shrinks 3 -> 2 -> 1, and each row's stored keys/values (stored
    # when it left) let the next turn continue exactly as an uncached policy does.
    from hero_gym.policies.base import ChatRequest

    model, tok = tiny_policy.model, tiny_policy.tokenizer
    cached = HFPolicy(model, tok, batch_size=3, prefix_cache_mb=64)
    prompts = [chat.prompt_ids(tok, [{"role": "user", "content": "q" * k}]) for k in (3, 5, 7)]
    budgets = (2, 5, 9)
    rows = []
    handle = model.register_forward_pre_hook(lambda _m, args, kw: rows.append(kw["input_ids"].shape[0]),
                                             with_kwargs=True)
    try:
        first = cached.generate([ChatRequest(messages=[], prompt_token_ids=p, max_new_tokens=b, seed=i)
                                 for i, (p, b) in enumerate(zip(prompts, budgets))])
    finally:
        handle.remove()
    assert [g.finish_reason for g in first] == ["length"] * 3 and [len(g.token_ids) for g in first] == [2, 5, 9]
    assert rows == [3, 3, 2, 2, 2, 1, 1, 1, 1]  # the first forward, then one per decode step
    alone = [tiny_policy.generate([ChatRequest(messages=[], prompt_token_ids=p, max_new_tokens=b, seed=i)])[0]
             for i, (p, b) in enumerate(zip(prompts, budgets))]
    assert [g.token_ids for g in first] == [g.token_ids for g in alone]
    nxt = [p + g.token_ids + tok.encode(" next", add_special_tokens=False) for p, g in zip(prompts, first)]
    again = cached.generate([ChatRequest(messages=[], prompt_token_ids=p, max_new_tokens=6, seed=9) for p in nxt])
    plain = tiny_policy.generate([ChatRequest(messages=[], prompt_token_ids=p, max_new_tokens=6, seed=9) for p in nxt])
    assert cached.prefix_cache.hits == 3
    for a, b in zip(again, plain):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
