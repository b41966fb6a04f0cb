"""Behaviour cloning (`--method sft`) on a tiny model: token layout, agent-token-only loss, descent, resume,
oracle demonstrations in WebShop, chat JSONL input and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from hero_gym import chat
from hero_gym.agents import TrainConfig, make_trainer
from hero_gym.agents.sft import SFTConfig, load_chat_jsonl, stop_suffix, trajectory_from_messages
from hero_gym.env import TextEnv
from hero_gym.policies.models import tiny_model
from hero_gym.rollout import EpisodeSpec, run_episodes
from hero_gym.types import Generation

from agents_fixtures import loss_before_and_after


class Echo(TextEnv):
    """Two turns; the observation quotes the action so every conversation is different."""

    default_max_turns = 2

    def __init__(self, split="train", max_turns=None, **_):
        super().__init__(max_turns=max_turns)

    def _num_tasks(self):
        return 3

    def _reset_task(self, i):
        return f"Task {i}: say two things.", {}

    def _step_turn(self, action):
        return f"You said <{action}> on turn {self._turns}.", float(self._turns == 2), self._turns >= 2, None, {}


class ScriptedTokens:
    """A policy with a tokenizer (so the rollout engine keeps ids) that writes fixed text plus the stop token."""

    def __init__(self, tok):
        self.tokenizer = tok

    def generate(self, requests):
        out = []
        for r in requests:
            text = f"act {r.context['task_index']}-{r.context['turn']} e e"
            out.append(Generation(text=text, token_ids=chat.encode(self.tokenizer, text) + stop_suffix(self.tokenizer)))
        return out


def demos_file(tmp_path, tok, n=3):
    trajs = run_episodes(Echo, ScriptedTokens(tok), [EpisodeSpec(task_index=i, attempt=0, seed=i) for i in range(n)])
    path = tmp_path / "demos.jsonl"
    path.write_text("".join(json.dumps({"messages": t.messages, "success": True, "task": t.task_index}) + "\n"
                            for t in trajs))
    return path, trajs


def trainer(tmp_path, source, steps=2, out="sft", **kw):
    model, tok = tiny_model(seed=0)
    cfg = TrainConfig(env_id="hero_gym/WebShop-v0", split="train", tasks=[0, 1, 2, 3], method="sft", group_size=1,
                      tasks_per_step=2, steps=steps, lr=1e-2, out_dir=str(tmp_path / out), seed=3, export_model=False,
                      **kw)
    return make_trainer(cfg, SFTConfig(source=str(source)), model=model, tokenizer=tok)


def test_trajectory_from_messages_is_token_exact_with_the_rollout_engine(tmp_path):
    _, tok = tiny_model()
    _, runs = demos_file(tmp_path, tok)
    for run in runs:
        rebuilt = trajectory_from_messages(tok, run.messages)
        assert rebuilt.token_ids() == run.token_ids()
        assert rebuilt.agent_mask() == run.agent_mask()
        assert [t.action for t in rebuilt.turns] == [t.action for t in run.turns]
        assert all(t.action_token_ids[-1:] == stop_suffix(tok) for t in rebuilt.turns)


def test_loss_is_the_mean_nll_of_agent_tokens_only(tmp_path):
    path, _ = demos_file(tmp_path, tiny_model()[1])
    tr = trainer(tmp_path, path)
    groups = tr.collect(0, 0)
    trajs = [t for g in groups for t in g]
    stats = tr.batch_loss(groups, 1.0)
    nll, n = 0.0, 0
    with torch.no_grad():
        for t in trajs:
            ids = torch.tensor([t.token_ids()])
            logp = torch.log_softmax(tr.model(input_ids=ids).logits[0, :-1].float(), -1)
            lp = logp.gather(-1, ids[0, 1:, None])[:, 0]
            mask = torch.tensor(t.agent_mask()[1:], dtype=torch.bool)
            nll -= float(lp[mask].sum())
            n += int(mask.sum())
    assert stats["loss_tokens"] == n > 0
    assert stats["loss"] == pytest.approx(nll / n, rel=1e-4)


def test_repeated_updates_on_a_fixed_batch_reduce_the_loss(tmp_path):
    path, _ = demos_file(tmp_path, tiny_model()[1])
    first, last = loss_before_and_after(trainer(tmp_path, path), 10)
    assert last < 0.5 * first


def test_resume_gives_the_same_next_step(tmp_path):
    path, _ = demos_file(tmp_path, tiny_model()[1])
    full = trainer(tmp_path, path, steps=2, out="a").train()
    trainer(tmp_path, path, steps=1, out="b").train()
    resumed = trainer(tmp_path, path, steps=2, out="b")
    assert resumed.step == 1
    again = resumed.train()
    assert [h["step"] for h in again] == [2]
    for key in ("loss", "loss_tokens", "grad_norm"):
        assert again[0][key] == full[1][key], key


@pytest.mark.slow
def test_oracle_demonstrations_in_webshop_train(tmp_path):
    tr = trainer(tmp_path, "oracle", steps=1, max_new_tokens=64)
    groups = tr.collect(0, 0)
    trajs = [t for g in groups for t in g]
    assert len(trajs) == 2 and all(t.success for t in trajs)
    assert all(t.turns[0].action.startswith("search[") and t.turns[-1].action == "click[buy now]" for t in trajs)
    # the same tasks the other methods would roll out at this step
    assert [t.task_index for t in trajs] == [s.task_index for s in tr.episode_specs(0, 0)]
    history = tr.train()
    assert history[0]["loss"] > 0 and history[0]["demos"] == 2


def test_bad_sources_fail_with_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither 'oracle'"):
        load_chat_jsonl(tmp_path / "missing.jsonl", True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not JSON"):
        load_chat_jsonl(bad, True)
    bad.write_text('{"messages": [], "success": false}\n')
    with pytest.raises(ValueError, match="no usable demonstration"):
        load_chat_jsonl(bad, True)
    _, tok = tiny_model()
    with pytest.raises(ValueError, match="at least one assistant"):
        trajectory_from_messages(tok, [{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="tool_calls"):
        trajectory_from_messages(tok, [{"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": "", "tool_calls": [{"name": "x"}]}])


def test_cli_trains_sft_from_a_chat_jsonl(tmp_path):
    from hero_gym.agents.cli import train_main

    path, _ = demos_file(tmp_path, tiny_model()[1])
    rc = train_main(["--method", "sft", "--env", "hero_gym/WebShop-v0", "--model", "tiny", "--group-size", "1",
                     "--tasks-per-step", "2", "--steps", "1", "--set", f"source={path}", "--set", "export_model=false",
                     "--out", str(tmp_path / "cli")])
    assert rc == 0
    log = [json.loads(x) for x in (tmp_path / "cli" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["method"] == "sft" and log[0]["loss_tokens"] > 0
