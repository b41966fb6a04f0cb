"""A toy text env and scripted policies for the harness/CLI tests; importable as a `hero-gym --plugin`.

Task i is solved by answering "answer i". The env gives info["messages"]/info["tools"] like the real envs do.
"""

from __future__ import annotations

import os
import time

from hero_gym.env import TextEnv
from hero_gym.policies.base import CallablePolicy
from hero_gym.registry import ENV_SPECS, EnvSpec, register_env

TOY_ID = "hero_gym_test/Toy-v0"
N_TASKS = 6


class ToyEnv(TextEnv):
    """Answer the task number to win; anything else earns an error observation and another try."""

    default_max_turns = 3

    def __init__(self, split: str = "test", max_turns: int | None = None, **kw):
        self.split = split
        super().__init__(max_turns=max_turns, **kw)
        self._messages: list[dict] = []

    def _num_tasks(self) -> int:
        return N_TASKS

    def _reset_task(self, task_index):
        obs = f"task {task_index}: reply 'answer {task_index}'"
        self._messages = [{"role": "system", "content": "toy"}, {"role": "user", "content": obs}]
        return obs, {"messages": list(self._messages), "tools": None}

    def _step_turn(self, action):
        self._messages.append({"role": "assistant", "content": action})
        if action.strip() == f"answer {self._task_index}":
            return "correct", 1.0, True, None, {"messages": list(self._messages), "tools": None}
        obs = "wrong, try again"
        self._messages.append({"role": "user", "content": obs})
        return obs, 0.0, False, None, {"messages": list(self._messages), "tools": None, "invalid": True}


def register() -> None:
    if TOY_ID not in ENV_SPECS:
        register_env(EnvSpec(id=TOY_ID, entry_point=f"{__name__}:ToyEnv", splits={"test": N_TASKS},
                             default_split="test", default_max_turns=3, description="toy env for harness tests"))


def unregister() -> None:
    """Take the toy id out again so other test modules see only the real registry."""
    import gymnasium as gym

    ENV_SPECS.pop(TOY_ID, None)
    gym.registry.pop(TOY_ID, None)


register()  # importing the module (e.g. `hero-gym --plugin harness_toyenv`) registers the env


def _task_of(messages) -> int:
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    return int(first_user.split(":")[0].split()[1])


def solver(messages, tools):
    """Solves even tasks at once, never solves odd ones."""
    t = _task_of(messages)
    return f"answer {t}" if t % 2 == 0 else "no idea"


def even_solver():
    return CallablePolicy(solver, name="even-solver")


def slow_even_solver():
    """Like even_solver, but each reply takes HARNESS_TEST_DELAY seconds (a run long enough to kill mid-way)."""
    delay = float(os.environ.get("HARNESS_TEST_DELAY", "0.3"))

    def slow(messages, tools):
        time.sleep(delay)
        return solver(messages, tools)

    return CallablePolicy(slow, name="slow-even-solver")


LAST_KWARGS: dict = {}


def recording_solver(prefix_cache_mb: float = 0):
    """even_solver that remembers the keyword arguments the harness passed to its factory."""
    LAST_KWARGS.clear()
    LAST_KWARGS["prefix_cache_mb"] = prefix_cache_mb
    return even_solver()


class FlakyPolicy:
    """even_solver whose requests for the tasks in FAIL_TASKS come back as errors (a server that is down for them).

    FAIL_TIMES[task] > 0 limits the failures: each failed request counts one down (a transient outage).
    MAX_BATCH records the largest batch the harness sent. ERROR_TEXT is the error message.
    """

    FAIL_TASKS: set = set()
    FAIL_TIMES: dict = {}
    MAX_BATCH = 0
    ERROR_TEXT = "HTTP 503 from the model server after 3 retries"
    name = "flaky-even-solver"

    def generate(self, requests):
        from hero_gym.types import Generation

        FlakyPolicy.MAX_BATCH = max(FlakyPolicy.MAX_BATCH, len(requests))
        out = []
        for r in requests:
            t = _task_of(r.messages)
            left = FlakyPolicy.FAIL_TIMES.get(t)
            if t in FlakyPolicy.FAIL_TASKS and (left is None or left > 0):
                if left is not None:
                    FlakyPolicy.FAIL_TIMES[t] = left - 1
                out.append(Generation(text="", error=FlakyPolicy.ERROR_TEXT, finish_reason="error"))
            else:
                out.append(Generation(text=solver(r.messages, r.tools)))
        return out


def flaky_solver():
    return FlakyPolicy()


def surrogate_solver():
    """Answers every task with text holding a lone surrogate, which JSON allows and a model can return."""
    return CallablePolicy(lambda messages, tools: "answer \ud800 " + str(_task_of(messages)), name="surrogate")


def broken_factory():
    """A factory whose model files are missing: loading fails after the spec itself checked out."""
    raise OSError("model weights not found: /nonexistent/model.safetensors")
