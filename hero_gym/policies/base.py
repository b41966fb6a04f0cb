"""The Policy interface: a batch of conversations in, one next assistant message per conversation out.

Every backend (Hugging Face model, vLLM engine, OpenAI-compatible server, scripted baselines, a user's own
callable) implements :meth:`Policy.generate`. The same interface drives the agent, the LLM simulated user, the
reflector and any judge, so one backend serves all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hero_gym.types import Generation


@dataclass
class ChatRequest:
    """One conversation to continue.

    messages: OpenAI-style chat messages (system/user/assistant/tool; assistant messages may carry `tool_calls`).
    tools: OpenAI function schemas the model may call, or None.
    prompt_token_ids: when set, a token-exact backend generates from exactly these ids instead of re-rendering
        `messages` (the rollout engine uses this to avoid re-tokenizing earlier turns).
    context: facts about the episode (env id, task index, split, seed). Ordinary policies ignore it; scripted
        baselines such as an oracle read it. It never reaches a model's prompt.
    """

    messages: list[dict]
    tools: list[dict] | None = None
    prompt_token_ids: list[int] | None = None
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    context: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """Anything with a `name` and a batched `generate`."""

    name: str

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """Return one Generation per request, in order. Must not raise for a single bad request: set
        `Generation.error` instead so the rollout can record that episode as failed and go on."""
        ...


class CallablePolicy:
    """Wraps a plain function ``fn(messages, tools) -> str`` (or -> Generation) as a Policy."""

    def __init__(self, fn, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"expected a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            try:
                res = self.fn(r.messages, r.tools)
            except Exception as e:  # a user's agent failing must not take the run down
                out.append(Generation(text="", error=f"{type(e).__name__}: {e}", finish_reason="error"))
                continue
            if isinstance(res, Generation):
                out.append(res)
            elif isinstance(res, str):
                out.append(Generation(text=res))
            else:
                out.append(Generation(text="", error=f"policy returned {type(res).__name__}, expected str", finish_reason="error"))
        return out
