"""TRL: hero-gym envs as GRPOTrainer environments (tools generated from the env) and as a rollout_func."""

import json

import pytest

pytest.importorskip("trl", reason="the trl extra (make test installs it)")

from transformers.utils import get_json_schema  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from trl.chat_template_utils import qwen3_chat_template  # noqa: E402

from hero_gym.actions import parse_action  # noqa: E402
from hero_gym.integrations.trl import (  # noqa: E402
    env_reward, environment_factory, make_rollout_func, task_dataset)
from hero_gym.policies.models import tiny_model  # noqa: E402
from integration_helpers import oracle_episode  # noqa: E402


def _call_as_trl_would(env, action: str, family: str) -> str:
    """Turn an oracle action into the tool call a model would make through TRL."""
    if family == "webshop":
        kind, _, arg = action.partition("[")
        return getattr(env, kind)(arg[:-1])
    parsed = parse_action(action)
    if parsed.kind == "tool":
        return getattr(env, parsed.name)(**parsed.arguments)
    return env.send_message_to_customer(action)


@pytest.mark.parametrize("env_id,family", [("hero_gym/Tau2Retail-v0", "tau"), ("hero_gym/TauRetail-v0", "tau"),
                                           ("hero_gym/WebShop-v0", "webshop")])
def test_tool_methods_replay_the_oracle_with_the_envs_reward(env_id, family):
    cls = environment_factory(env_id)
    assert environment_factory(env_id) is cls  # one class: TRL logs one reward column
    for task in (0, 1):
        traj = oracle_episode(env_id, task, seed=task)
        env = cls()
        assert env.reset(task_index=task, seed=task) == traj.initial_observation
        assert env.get_reward() == 0.0
        for turn in traj.turns:
            assert _call_as_trl_would(env, turn.action, family) == turn.observation
        assert traj.reward > 0 and env.get_reward() == traj.reward
        assert env.click("x") if family == "webshop" else env.send_message_to_customer("hi")  # ended: no crash


def test_tau_tool_schemas_follow_the_envs():
    from hero_gym.envs.tau.env import domain_tools

    env = environment_factory("hero_gym/TauAirline-v0")()
    theirs = {s["function"]["name"]: s["function"] for s in domain_tools("airline", "v1")[1]}
    ours = {}
    for name in theirs:
        ours[name] = get_json_schema(getattr(env, name))["function"]
    for name, fn in theirs.items():
        params = fn["parameters"]
        got = ours[name]["parameters"]
        assert set(got["properties"]) == set(params["properties"]), name
        assert set(got.get("required", [])) == set(params.get("required", [])), name
        for arg, prop in params["properties"].items():
            want = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
                    "array": "array", "object": "object"}[prop["type"]]
            assert got["properties"][arg]["type"] == want, (name, arg)
            if "enum" in prop:
                assert got["properties"][arg]["enum"] == prop["enum"], (name, arg)
    msg = get_json_schema(env.send_message_to_customer)["function"]
    assert msg["parameters"]["required"] == ["message"]


def _config(tmp_path, **kw):
    return GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=12, use_cpu=True, report_to="none", logging_steps=1, save_strategy="no",
                      learning_rate=1e-3, seed=0, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["hero_gym/Tau2Retail-v0", "hero_gym/WebShop-v0"])
def test_one_grpo_step_with_environment_factory(tmp_path, env_id, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    model, tok = tiny_model()
    tok.chat_template = qwen3_chat_template  # a template TRL knows how to parse tool calls from
    cls = environment_factory(env_id)
    resets = []
    monkeypatch.setattr(cls, "reset", lambda self, **kw: resets.append(kw["task_index"]) or
                        type(self).__mro__[1].reset(self, **kw))
    trainer = GRPOTrainer(model=model, processing_class=tok, args=_config(tmp_path), environment_factory=cls,
                          train_dataset=task_dataset(env_id, tasks=[0, 1], system_prompt=False))
    names = {t.__name__ for t in trainer.tools}
    assert ({"search", "click"} if "WebShop" in env_id else {"get_order_details", "send_message_to_customer"}) <= names
    trainer.train()
    assert resets and set(resets) <= {0, 1}  # each rollout started its row's task
    logged = trainer.state.log_history[0]
    assert f"rewards/{cls.__name__}/mean" in logged


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["hero_gym/Tau2Retail-v0", "hero_gym/WebShop-v0"])
def test_one_grpo_step_with_the_token_exact_rollout_func(tmp_path, env_id, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    # The tau policy text (thousands of tokens) would only slow the tiny model down: give it a short one. The tool
    # schemas still take ~5k tokens, past the tiny model's default 4k context (RoPE has no hard limit).
    monkeypatch.setattr("hero_gym.envs.tau.env.read_text", lambda *a, **k: "You are a customer service agent.")
    model, tok = tiny_model()
    model.config.max_position_embeddings = tok.model_max_length = 8192
    inner = make_rollout_func(env_id, max_turns=2, max_new_tokens=8)
    seen = []

    def rollout(prompts, trainer):
        out = inner(prompts, trainer)
        seen.append(out)
        return out

    trainer = GRPOTrainer(model=model, processing_class=tok, args=_config(tmp_path), reward_funcs=env_reward,
                          rollout_func=rollout, train_dataset=task_dataset(env_id, tasks=[0, 1], system_prompt=False))
    trainer.train()
    (out,) = seen
    assert len(out["completion_ids"]) == 2  # one episode per prompt TRL passed
    for prompt, completion, mask, logps in zip(out["prompt_ids"], out["completion_ids"], out["env_mask"],
                                               out["logprobs"]):
        assert len(completion) == len(mask) == len(logps) and 0 in mask and 1 in mask  # env turns are masked
        text = tok.decode(prompt + completion)
        assert text.count("<|im_start|>assistant") >= 2  # several turns in one completion
        assert all(lp == 0.0 for lp, m in zip(logps, mask) if m == 0)
        assert any(lp < 0.0 for lp, m in zip(logps, mask) if m == 1)
    assert "rewards/env_reward/mean" in trainer.state.log_history[0]
    with pytest.raises(ValueError, match="hero_gym_task_index"):
        inner([[{"role": "user", "content": "hi"}]], trainer)


def test_dataset_rows_and_errors():
    ds = task_dataset("hero_gym/WebShop-v0", tasks=[3, 5])
    assert ds["task_index"] == [3, 5] and ds[0]["prompt"][-1]["hero_gym_task_index"] == 3
    with pytest.raises(ValueError, match="out of range"):
        task_dataset("hero_gym/WebShop-v0", tasks=[10**6])
    with pytest.raises(ValueError, match="env_reward"):
        env_reward(["x"])
    assert json.dumps(env_reward(["x"], env_reward=[1])) == "[1.0]"
