"""Simulated TauBench customers: the other side of the conversation the agent must serve.

Every user has the same two calls the environment drives: ``reset(task, seed)`` returns the customer's opening
message and ``step(agent_message)`` the reply to what the agent said. A reply containing ``###STOP###`` ends the
episode (tau2 also uses ``###TRANSFER###`` and ``###OUT-OF-SCOPE###``).

- :class:`LLMUser` plays the customer with any :class:`~hero_gym.policies.base.Policy`, as upstream tau-bench
  does with an LLM, with a reproducible response cache.
- :class:`ScriptedUser` is a deterministic, model-free customer built from the task text and the user's DB record,
  for tests, smoke runs and cheap baselines.

``task`` may be the environment's Task dataclass or a raw task dict (v1 ``{user_id, instruction, ...}`` or tau2
``{id, user_scenario, ...}``); only a few fields are read, through :func:`task_instruction` and friends.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path
from typing import Any

from hero_gym.policies.base import ChatRequest, Policy

STOP = "###STOP###"
TRANSFER = "###TRANSFER###"
OUT_OF_SCOPE = "###OUT-OF-SCOPE###"
END_TOKENS = (STOP, TRANSFER, OUT_OF_SCOPE)
# Upstream opens every conversation with this fake agent greeting so the user model speaks first.
GREETING = "Hi! How can I help you today?"


class UserSimulatorError(RuntimeError):
    """The user's backend failed (policy raised or returned an error); the env ends the episode with reason "error"."""


def is_end(text: str) -> bool:
    """True when a user message ends the conversation (any of the stop/transfer/out-of-scope tokens)."""
    return any(tok in text for tok in END_TOKENS)


# ---------------------------------------------------------------------------------------------- task accessors


def _field(task: Any, name: str, default: Any = None) -> Any:
    if isinstance(task, dict):
        return task.get(name, default)
    return getattr(task, name, default)


def task_scenario(task: Any) -> dict | None:
    """The tau2 ``user_scenario.instructions`` as a dict, or None for a v1 task."""
    scenario = _field(task, "user_scenario")
    if not scenario:
        return None
    instr = scenario.get("instructions") if isinstance(scenario, dict) else None
    if isinstance(instr, str):
        return {"reason_for_call": instr}
    if isinstance(instr, dict):
        return instr
    return None


def task_instruction(task: Any) -> str:
    """The customer's whole brief as one text: the v1 instruction, or the tau2 scenario fields joined in order."""
    scenario = task_scenario(task)
    if scenario is None:
        text = _field(task, "instruction")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("task has neither an `instruction` string nor a tau2 `user_scenario`")
        return text.strip()
    persona = (_field(task, "user_scenario") or {}).get("persona")
    parts = [persona] if persona else []
    for key in ("known_info", "reason_for_call", "unknown_info", "task_instructions"):
        if scenario.get(key):
            parts.append(str(scenario[key]).strip())
    if not parts:
        raise ValueError("tau2 task has an empty user_scenario")
    return "\n\n".join(parts)


def task_version(task: Any) -> str:
    """"tau2" for tasks with a user_scenario, else the task's `version` field, else "v1"."""
    if task_scenario(task) is not None:
        return "tau2"
    return str(_field(task, "version") or "v1")


# ---------------------------------------------------------------------------------------------- base class


class User(ABC):
    """A simulated customer. Subclasses implement :meth:`reset` and :meth:`step`; neither may return None."""

    name: str = "user"

    @abstractmethod
    def reset(self, task: Any, seed: int | None = None, *, user_record: dict | None = None) -> str:
        """Start a conversation for `task`; returns the customer's first message."""

    @abstractmethod
    def step(self, agent_message: str) -> str:
        """The customer's reply to `agent_message`."""


# ---------------------------------------------------------------------------------------------- response cache


class ResponseCache:
    """Replies keyed by (sha256 of the exact prompt messages, seed), in memory and optionally in a JSONL file.

    Replaying a conversation with the same agent messages and seed hits the cache at every turn, so the user side
    of an episode is reproduced exactly without calling the model. The key holds neither the model nor the
    sampling settings, so keep one cache (file) per user model and temperature. The file is append-only (one
    ``{"key", "text"}`` per line) so concurrent episodes never rewrite each other's entries.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._mem: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    self._mem[rec["key"]] = rec["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValueError(f"{self.path}:{lineno}: not a user-cache record ({e})") from None

    @staticmethod
    def key(messages: list[dict], seed: int | None) -> str:
        blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return f"{hashlib.sha256(blob.encode('utf-8')).hexdigest()}:{seed}"

    def get(self, key: str) -> str | None:
        return self._mem.get(key)

    def put(self, key: str, text: str) -> None:
        with self._lock:
            if self._mem.get(key) == text:
                return
            self._mem[key] = text
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._mem)


# ---------------------------------------------------------------------------------------------- LLM user


def _prompt_text(name: str) -> str:
    return resources.files("hero_gym.envs.tau").joinpath("prompts", name).read_text(encoding="utf-8")


class LLMUser(User):
    """A customer played by a language model through any Policy, with upstream tau-bench's conversation shape.

    The model gets a system prompt (``prompts/user_llm.txt``) holding the task instruction and the rules of the
    role; roles are flipped, so the agent's messages reach the model as ``user`` turns and the model's own lines are
    ``assistant`` turns, and the first model turn answers the fixed greeting ``"Hi! How can I help you today?"``.
    tau2 tasks add the transfer/out-of-scope rules (``prompts/user_llm_tau2_extra.txt``).

    cache: a :class:`ResponseCache`, a JSONL path (a cache persisted there), or None (a private in-memory cache).
    seed: default seed when `reset` gets none; passed to the policy with every request and part of the cache key.
    Raises :class:`UserSimulatorError` when the policy fails.
    """

    def __init__(self, policy: Policy, cache: ResponseCache | str | Path | None = None, temperature: float = 1.0,
                 seed: int | None = None, max_new_tokens: int = 256):
        if not hasattr(policy, "generate"):
            raise TypeError(f"LLMUser needs a Policy with .generate(), got {type(policy).__name__}")
        self.policy = policy
        self.cache = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
        self.temperature = float(temperature)
        self.default_seed = seed
        self.max_new_tokens = int(max_new_tokens)
        self.name = f"llm:{getattr(policy, 'name', type(policy).__name__)}"
        self.messages: list[dict] = []
        self.seed: int | None = seed
        self.n_calls = 0
        self.n_cache_hits = 0

    def system_prompt(self, task: Any) -> str:
        extra = _prompt_text("user_llm_tau2_extra.txt") if task_version(task) == "tau2" else ""
        # str.replace, not format: instructions may contain braces.
        text = _prompt_text("user_llm.txt").replace("{instruction}", task_instruction(task))
        return text.replace("{extra_rules}", extra).rstrip() + "\n"

    def reset(self, task: Any, seed: int | None = None, *, user_record: dict | None = None) -> str:
        self.seed = seed if seed is not None else self.default_seed
        self.messages = [
            {"role": "system", "content": self.system_prompt(task)},
            {"role": "user", "content": GREETING},
        ]
        return self._reply()

    def step(self, agent_message: str) -> str:
        if not self.messages:
            raise RuntimeError("LLMUser.step() called before reset()")
        self.messages.append({"role": "user", "content": str(agent_message)})
        return self._reply()

    def _reply(self) -> str:
        key = ResponseCache.key(self.messages, self.seed)
        text = self.cache.get(key)
        if text is not None:
            self.n_cache_hits += 1
        else:
            text = self._generate()
            self.cache.put(key, text)
        self.messages.append({"role": "assistant", "content": text})
        return text

    def _generate(self) -> str:
        request = ChatRequest(messages=[dict(m) for m in self.messages], temperature=self.temperature,
                              seed=self.seed, max_new_tokens=self.max_new_tokens, context={"role": "user_simulator"})
        self.n_calls += 1
        try:
            out = self.policy.generate([request])
        except Exception as e:  # any backend failure becomes one clear type the env maps to "error"
            raise UserSimulatorError(f"user policy {self.name!r} raised {type(e).__name__}: {e}") from e
        if not isinstance(out, (list, tuple)) or len(out) != 1:
            raise UserSimulatorError(f"user policy {self.name!r} returned {type(out).__name__} "
                                     f"of length {len(out) if hasattr(out, '__len__') else '?'}, expected 1 Generation")
        gen = out[0]
        if getattr(gen, "error", None):
            raise UserSimulatorError(f"user policy {self.name!r} failed: {gen.error}")
        text = getattr(gen, "text", None)
        if not isinstance(text, str):
            raise UserSimulatorError(f"user policy {self.name!r} returned no text")
        return text.strip()


def __getattr__(name: str):
    # ScriptedUser lives in its own module (it subclasses User from here); resolved lazily to avoid an import cycle.
    if name == "ScriptedUser":
        from hero_gym.envs.tau.users_scripted import ScriptedUser

        return ScriptedUser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["User", "LLMUser", "ScriptedUser",  # noqa: F822 (ScriptedUser comes from __getattr__)
           "ResponseCache", "UserSimulatorError", "is_end", "task_instruction",
           "task_scenario", "task_version", "STOP", "TRANSFER", "OUT_OF_SCOPE", "GREETING"]
