"""The simulated user (`--user llm:SPEC`) and HERO's reflector (`--reflector SPEC`) accept any policy spec: here an
OpenAI-compatible server (a stub on 127.0.0.1, as a separate `vllm serve` would be) receives their requests."""

from __future__ import annotations

import json

import pytest
from test_policies_http import Stub, _reply

from hero_gym.agents.base import TrainConfig
from hero_gym.agents.cli import _Usage, load_reflector, load_user
from hero_gym.agents.hero import HEROConfig, HEROTrainer
from hero_gym.policies.http import OpenAIHTTPPolicy
from hero_gym.policies.models import tiny_model
from hero_gym.policies.scripted import load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes


@pytest.fixture
def server():
    s = Stub()
    yield s
    s.close()


def test_hero_reflector_requests_go_to_the_server(server, tmp_path):
    server.script = [_reply("turn 1: necessary=yes valid=no cause=wrong query correction=search[red shoes]")]
    reflector = load_reflector(f"{server.url}#reflector-model", "hero_gym/WebShop-v0", seed=0)
    assert isinstance(reflector, OpenAIHTTPPolicy)
    trajs = run_episodes("hero_gym/WebShop-v0", load_policy("random", env_id="hero_gym/WebShop-v0", seed=0),
                         [EpisodeSpec(task_index=t, seed=t, split="train") for t in (0, 1)],
                         env_kwargs={"max_turns": 2})
    model, tok = tiny_model()
    cfg = TrainConfig(env_id="hero_gym/WebShop-v0", model="tiny", group_size=2, tasks_per_step=1, device="cpu",
                      precision="fp32", out_dir=str(tmp_path), progress=False)
    trainer = HEROTrainer(cfg, HEROConfig(), model=model, tokenizer=tok, reflector=reflector)
    trainer.prepare_groups([trajs])
    assert len(server.seen) == len(trajs) == trainer.selection_stats["reflections"]
    for req in server.seen:
        body = req["body"]
        assert req["path"] == "/v1/chat/completions" and body["model"] == "reflector-model"
        assert body["temperature"] == 0.0  # greedy reflection (HEROConfig.reflect_temperature)
    # The HTTP reflector sends its requests concurrently, so they arrive in any order: pair them by content.
    contents = [req["body"]["messages"][0]["content"] for req in server.seen]
    for traj in trajs:
        transcript = trainer._transcript(traj)  # the transcript it judges, each in exactly one request
        assert traj.turns[0].action in transcript
        assert sum(transcript in c for c in contents) == 1


def test_simulated_user_requests_go_to_the_server(server):
    server.script = [_reply("Hi, I want to return the shoes from my last order. ###STOP###")]
    user = load_user(f"llm:{server.url}#user-model", seed=0)
    [traj] = run_episodes("hero_gym/TauRetail-v0", load_policy("scripted:How can I help you?"),
                          [EpisodeSpec(task_index=0, seed=0, split="test")], env_kwargs={"user": user, "max_turns": 2})
    assert traj.error is None and server.seen
    body = server.seen[0]["body"]
    assert body["model"] == "user-model"
    assert body["messages"][0]["role"] == "system"  # the customer's role prompt with the task instruction
    assert "Hi, I want to return" in json.dumps(traj.messages)


@pytest.mark.parametrize("spec", ["llm:", "http://x/v1#m"])
def test_bad_user_spec_is_a_usage_error(spec):
    with pytest.raises(_Usage, match="llm:POLICY_SPEC"):
        load_user(spec, 0)
