"""Behaviour cloning (``--method sft``): the warm start the four methods are compared from.

Demonstrations become :class:`~hero_gym.types.Trajectory` objects in the same token layout the rollout engine
writes (the chat template rendered turn by turn with :class:`hero_gym.chat.ConversationTokens`), and the loss is
the token-mean negative log-likelihood of the agent's tokens only: the prompt and every observation are context,
never targets. Each action's target ends with the template's stop token, so the model learns to end its turn.

Sources (``SFTConfig.source``):
- ``oracle``: the env's scripted oracle (``load_policy("oracle")``) is run on the step's training tasks, drawn as
  the other methods draw theirs, with the run's env settings (``env_kwargs``); only successful demonstrations are
  kept unless ``only_success=False``.
- a path to a chat JSONL file (``hero-gym export --out demos.jsonl``): one ``{"messages": [...]}`` example per
  line; each step draws ``tasks_per_step`` examples.

One optimiser step = ``tasks_per_step x group_size`` demonstrations (the oracle is deterministic, so G > 1 only
repeats them; use G = 1). Checkpoint/resume, logging and periodic evaluation are the shared trainer's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hero_gym import chat
from hero_gym.agents.base import Trainer
from hero_gym.agents.scoring import token_logprobs, trajectory_action_logits
from hero_gym.types import Trajectory, Turn


@dataclass
class SFTConfig:
    """Behaviour-cloning settings."""

    source: str = "oracle"
    """"oracle" (the env's scripted oracle on the training tasks) or the path of a chat JSONL file."""
    only_success: bool = True
    """Drop demonstrations that did not succeed (oracle runs, or JSONL examples whose "success" is false)."""

    def validate(self, train) -> None:
        """Raise ValueError for a source that is neither "oracle" nor a file (checked before a run starts)."""
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"sft source must be 'oracle' or a chat JSONL path, got {self.source!r}")
        if self.source != "oracle" and not Path(self.source).is_file():
            raise ValueError(f"sft source {self.source!r} is neither 'oracle' nor an existing chat JSONL file")


def stop_suffix(tokenizer) -> list[int]:
    """The stop token a model emits to end its turn (the first token of the template's end-of-turn text when it
    is a stop token, e.g. ``<|im_end|>``); [] when the template has none."""
    eot = chat.encode(tokenizer, chat.end_of_turn_text(tokenizer))
    return eot[:1] if eot and eot[0] in chat.stop_token_ids(tokenizer) else []


def trajectory_from_messages(tokenizer, messages: list[dict], tools: list[dict] | None = None, *,
                             env_id: str = "", task_index: int = -1, reward: float = 0.0,
                             success: bool = False) -> Trajectory:
    """A chat conversation as a token-exact Trajectory: the messages before the first assistant message are the
    prompt; each assistant message is one turn (its text + the stop token); what follows it up to the next
    assistant message is that turn's observation. Raises ValueError on a conversation it cannot represent."""
    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        raise ValueError("a demonstration needs at least one assistant message")
    if any(m.get("tool_calls") for m in messages if m.get("role") == "assistant"):
        raise ValueError("assistant messages with tool_calls are not supported by sft (text actions only)")
    first = roles.index("assistant")
    if first == 0:
        raise ValueError("a demonstration must start with the prompt (system/user messages) before the agent speaks")
    ledger = chat.ConversationTokens(tokenizer, messages[:first], tools)
    traj = Trajectory(env_id=env_id, task_index=task_index, seed=None, prompt_token_ids=list(ledger.prompt_token_ids),
                      messages=list(messages), tools=tools, reward=float(reward), success=bool(success))
    stop = stop_suffix(tokenizer)
    starts = [i for i, r in enumerate(roles) if r == "assistant"]
    for k, i in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(messages)
        text = messages[i].get("content") or ""
        if not isinstance(text, str):
            raise ValueError(f"assistant message {i} has non-text content")
        action_ids = chat.encode(tokenizer, text) + stop
        observation = "\n".join(str(m.get("content") or "") for m in messages[i + 1:end])
        obs_ids = ledger.add_turn(action_ids, messages[:end], done=end == len(messages))
        traj.turns.append(Turn(index=k, action=text, observation=observation, action_token_ids=action_ids,
                               obs_token_ids=obs_ids))
    return traj


def load_chat_jsonl(path: str | Path, only_success: bool) -> list[dict]:
    """The examples of a chat JSONL file (``hero-gym export``), each with "messages"; bad lines raise ValueError."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sft source {path!r} is neither 'oracle' nor an existing chat JSONL file")
    examples = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(ex, dict) or not isinstance(ex.get("messages"), list):
            raise ValueError(f"{path}:{n}: an example needs a 'messages' list")
        if only_success and ex.get("success") is False:
            continue
        examples.append(ex)
    if not examples:
        raise ValueError(f"{path} holds no usable demonstration" + (" (only_success=True)" if only_success else ""))
    return examples


class SFTTrainer(Trainer):
    """Token-mean NLL on the agent tokens of demonstrations (oracle runs or an exported chat JSONL)."""

    method_name = "sft"
    uses_turn_budget = False  # demonstrations are whole episodes under the env's own turn cap

    def __init__(self, config, method_config: SFTConfig | None = None, **kwargs):
        self.method_config = method_config or SFTConfig()
        self.method_config.validate(config)
        super().__init__(config, **kwargs)

    def prepare(self) -> None:
        mc = self.method_config
        self._examples = None if mc.source == "oracle" else load_chat_jsonl(mc.source, mc.only_success)
        self._oracle = None

    def collect(self, step: int, micro: int) -> list[list[Trajectory]]:
        """Demonstrations of step `step`, one group each: the oracle on the episodes the other methods would roll
        out, or JSONL examples drawn by (seed, step, micro)."""
        cfg, mc = self.config, self.method_config
        if self._examples is not None:
            rng = np.random.default_rng([cfg.seed, step, micro, self.rank])
            picks = rng.choice(len(self._examples), size=cfg.tasks_per_step * cfg.group_size,
                               replace=len(self._examples) < cfg.tasks_per_step * cfg.group_size).tolist()
            trajs = [trajectory_from_messages(self.tokenizer, self._examples[i]["messages"],
                                              self._examples[i].get("tools"), env_id=cfg.env_id,
                                              task_index=int(self._examples[i].get("task", -1)),
                                              reward=float(self._examples[i].get("reward", 0.0)),
                                              success=bool(self._examples[i].get("success", False)))
                     for i in picks]
        else:
            # The oracle is deterministic: its episode seed does not matter, only the task.
            trajs = [self._demo(spec) for spec in self.episode_specs(step, micro)]
            trajs = [t for t in trajs if t is not None and (t.success or not mc.only_success)]
            self.count("demos_dropped", cfg.tasks_per_step * cfg.group_size - len(trajs))
        return [[t] for t in trajs]

    def _demo(self, spec) -> Trajectory | None:
        from hero_gym.policies.scripted import load_policy

        cfg = self.config
        if self._oracle is None:
            self._oracle = load_policy("oracle", env_id=cfg.env_id)
        # The oracle's episode runs with the training env settings but the env's own turn cap: a demonstration
        # is the whole solution even when the training turn budget is short.
        [run] = self.rollout_fn(cfg.env_id, self._oracle, [spec], env_kwargs=dict(cfg.env_kwargs),
                                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=None)
        if run.error:
            self.count("demo_errors")
            return None
        return trajectory_from_messages(self.tokenizer, run.messages, run.tools, env_id=cfg.env_id,
                                        task_index=run.task_index, reward=run.reward, success=run.success)

    def batch_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        cfg = self.config
        trajs = [t for g in groups for t in g]
        total = sum(len(turn.action_token_ids) for t in trajs for turn in t.turns)
        stats = {"loss": 0.0, "loss_tokens": total, "demos": len(trajs),
                 "demo_turns": sum(t.num_turns for t in trajs), "token_accuracy": 0.0}
        if total == 0:
            return stats
        for traj in trajs:
            ids = traj.token_ids()[:cfg.max_context_tokens]
            spans = [(s, e) for s, e in traj.turn_spans() if e <= len(ids) and e > s]
            if not spans:
                self.count("demos_too_long")
                continue
            logits = torch.cat(trajectory_action_logits(self.model, ids, spans))
            targets = torch.tensor([t for s, e in spans for t in ids[s:e]], device=logits.device)
            logp = token_logprobs(logits, targets)
            loss = -logp.sum() / total
            self.backward(loss * scale)
            stats["loss"] += float(loss.detach())
            stats["token_accuracy"] += float((logits.argmax(-1) == targets).sum()) / total
        return stats
