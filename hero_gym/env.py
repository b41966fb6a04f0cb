"""The text-environment base class: one `step` is one agent turn, under a turn budget.

Subclasses implement three hooks: :meth:`TextEnv._num_tasks`, :meth:`TextEnv._reset_task` and
:meth:`TextEnv._step_turn`. This class owns what every env must do the same way: task selection (index or seeded
draw), the turn budget (``truncated=True`` and reward 0 when it runs out), the ``info`` fields, termination reasons,
and refusing to step a finished episode.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

MAX_TEXT_LENGTH = 1_000_000

# A broad charset for sampling: printable ASCII plus some non-ASCII letters and symbols. `contains` accepts any
# character; the charset only shapes what `sample()` draws.
_SAMPLE_CHARSET = string.printable + "éüßøñçå€£→✓中文日本語한국어ąż—“”‘’…"


class AnyText(spaces.Text):
    """A Text space that holds any Python string up to `max_length` characters.

    Gymnasium's `Text` default charset is alphanumeric only, so an observation with a space or a brace would fail
    `contains`. Agents speak JSON and prose, so both spaces here accept every character.
    """

    def __init__(self, max_length: int = MAX_TEXT_LENGTH, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=_SAMPLE_CHARSET, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        # Keep samples short: fuzzing long random strings wastes time without adding coverage.
        length = int(self.np_random.integers(0, 64))
        idx = self.np_random.integers(0, len(self.character_list), size=length)
        return "".join(self.character_list[i] for i in idx)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and other.max_length == self.max_length


class EnvArgumentError(ValueError, TypeError):
    """A bad constructor or ``reset`` argument: a ValueError whose message says what is allowed.

    It is also a TypeError because some of these (a wrong `user` or `judge` type) used to raise TypeError, and
    callers catching that should keep working.
    """


def check_seed(seed: Any) -> int | None:
    """`seed` as reset takes it: None or an integer >= 0 (numpy integers too; not bool)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EnvArgumentError(f"seed must be None or an integer >= 0, got {seed!r}")
    return int(seed)


# Async vector envs pass observations through shared memory. Gymnasium's Text handlers store one charset index per
# character, so any character outside the sampling charset (a no-break space in a product title) raised KeyError.
# AnyText stores UTF-8 bytes instead: an 8-byte length, then the text, in a slot of 4 bytes per allowed character.
_LEN_BYTES = 8


def _slot_bytes(space: AnyText) -> int:
    return _LEN_BYTES + 4 * space.max_length


@create_shared_memory.register(AnyText)
def _create_anytext_shared_memory(space: AnyText, n: int = 1, ctx: Any = None):
    import multiprocessing as mp

    return (ctx or mp).Array("B", n * _slot_bytes(space), lock=True)


@write_to_shared_memory.register(AnyText)
def _write_anytext_to_shared_memory(space: AnyText, index: int, value: str, shared_memory) -> None:
    data = value.encode("utf-8")
    start = index * _slot_bytes(space)
    buf = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)
    buf[start:start + _LEN_BYTES] = np.frombuffer(len(data).to_bytes(_LEN_BYTES, "little"), dtype=np.uint8)
    buf[start + _LEN_BYTES:start + _LEN_BYTES + len(data)] = np.frombuffer(data, dtype=np.uint8)


class SharedTexts(Sequence):
    """The batch of observations of an async vector env, decoded from its shared memory on every access.

    Gymnasium reads shared memory once and expects a live view (a numpy array for Box spaces); a tuple of str would
    freeze the first observations. This sequence reads the current ones; ``deepcopy`` (what the vector env returns
    with ``copy=True``, the default) gives a plain tuple.
    """

    def __init__(self, space: AnyText, shared_memory, n: int):
        self._buf = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)
        self._slot, self._n = _slot_bytes(space), n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self._n)))
        if not -self._n <= i < self._n:
            raise IndexError(f"index {i} out of range for {self._n} observations")
        start = (i % self._n) * self._slot
        length = int.from_bytes(self._buf[start:start + _LEN_BYTES].tobytes(), "little")
        return self._buf[start + _LEN_BYTES:start + _LEN_BYTES + length].tobytes().decode("utf-8")

    def __deepcopy__(self, memo) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, (tuple, Sequence)) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(AnyText)
def _read_anytext_from_shared_memory(space: AnyText, shared_memory, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)


class TerminationReason(str, Enum):
    """Why an episode ended; ``info["termination_reason"]`` holds the value (None while it runs)."""

    SUCCESS = "success"  # the task's goal was reached (reward 1.0)
    FAILURE = "failure"  # the episode ended by the task's own rule but the goal was not reached
    USER_STOP = "user_stop"  # the simulated user ended the conversation (reward tells whether it succeeded)
    TRANSFER = "transfer_to_human"  # the agent handed over to a human agent
    PURCHASE = "purchase"  # WebShop: the agent bought an item (reward tells how good it was)
    BUDGET = "turn_budget"  # max_turns ran out: truncated=True, reward 0
    OUT_OF_SCOPE = "out_of_scope"  # tau2 users may end a call as out of scope
    ERROR = "error"  # the env or policy failed in a way the episode cannot go on from


class TextEnv(gym.Env):
    """Base class for hero-gym's text environments (see the subclasses' docstrings for each env's contract)."""

    # render_fps only silences Gymnasium's checker: "ansi" renders the last observation, there is no frame rate.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    default_max_turns = 30

    def __init__(self, *, max_turns: int | None = None, task_index: int | None = None, render_mode: str | None = None):
        if max_turns is None:
            max_turns = self.default_max_turns
        if isinstance(max_turns, bool) or not isinstance(max_turns, (int, np.integer)) or max_turns < 1:
            raise EnvArgumentError(f"max_turns must be a positive integer, got {max_turns!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvArgumentError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.max_turns = int(max_turns)
        self.render_mode = render_mode
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self._fixed_task_index = None if task_index is None else self._check_task_index(task_index)
        self._turns = 0
        self._done = True
        self._task_index: int | None = None
        self._last_obs = ""
        self._termination_reason: str | None = None
        self._time_limit: int | None = None

    # ----- hooks for subclasses -------------------------------------------------------------------------------
    def _num_tasks(self) -> int:
        raise NotImplementedError

    def _reset_task(self, task_index: int) -> tuple[str, dict]:
        """Start task `task_index`; return the first observation and extra info."""
        raise NotImplementedError

    def _step_turn(self, action: str) -> tuple[str, float, bool, str | None, dict]:
        """Apply one agent turn. Return (observation, reward, terminated, termination_reason, extra info).

        Must never raise on any `action` string: a bad action is an observation plus ``info["invalid"]``.
        """
        raise NotImplementedError

    def _task_id(self, task_index: int) -> str:
        return str(task_index)

    # ----- Gymnasium API ----------------------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return self._num_tasks()

    @property
    def turn_budget(self) -> int:
        """The turns this episode may take: ``max_turns``, or a smaller ``TimeLimit`` over this env (see reset)."""
        return min(self.max_turns, self._time_limit) if self._time_limit else self.max_turns

    @property
    def task_index(self) -> int | None:
        return self._task_index

    def _check_task_index(self, task_index: Any) -> int:
        n = self._num_tasks()
        if isinstance(task_index, bool) or not isinstance(task_index, (int, np.integer)):
            raise EnvArgumentError(f"task_index must be an integer in [0, {n}), got {task_index!r}")
        if not 0 <= int(task_index) < n:
            raise EnvArgumentError(f"task_index {task_index} is out of range: this split has {n} tasks (0..{n - 1})")
        return int(task_index)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        """Start an episode. ``options={"task_index": i}`` picks a task; otherwise the fixed `task_index` given at
        construction, otherwise a draw from the env's seeded generator."""
        seed = check_seed(seed)
        if options is not None and not isinstance(options, Mapping):
            raise EnvArgumentError(
                f"options must be None or a dict such as {{'task_index': 0}} (allowed keys: "
                f"{sorted(self._allowed_reset_options())}), got {type(options).__name__} {options!r:.80}"
            )
        self._time_limit = _calling_time_limit()
        options = dict(options or {})
        unknown = set(options) - self._allowed_reset_options()
        if unknown:
            raise EnvArgumentError(
                f"unknown reset option(s) {sorted(map(str, unknown))}; allowed: {sorted(self._allowed_reset_options())}"
            )
        super().reset(seed=seed)
        if options.get("task_index") is not None:
            idx = self._check_task_index(options["task_index"])
        elif self._fixed_task_index is not None:
            idx = self._fixed_task_index
        else:
            idx = int(self.np_random.integers(self._num_tasks()))
        self._task_index = idx
        self._turns = 0
        self._done = False
        self._termination_reason = None
        obs, extra = self._reset_task(idx)
        self._last_obs = obs
        return obs, self._info(extra, invalid=False, reward=0.0)

    def _allowed_reset_options(self) -> set[str]:
        return {"task_index"}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        """One agent turn. Any string is a valid argument (a bad action is an observation, see the subclass); a
        non-string, or stepping a finished episode (or before reset), raises."""
        if self._done:
            raise RuntimeError("step() called on a finished episode (or before reset()); call reset() first")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str (the agent's message), got {type(action).__name__}")
        self._turns += 1
        obs, reward, terminated, reason, extra = self._step_turn(action)
        truncated = False
        if terminated:
            self._termination_reason = reason or (
                TerminationReason.SUCCESS.value if reward >= 1.0 else TerminationReason.FAILURE.value
            )
        elif self._turns >= self.turn_budget:
            truncated = True
            reward = 0.0
            self._termination_reason = TerminationReason.BUDGET.value
        self._done = terminated or truncated
        self._last_obs = obs
        extra = dict(extra or {})
        invalid = bool(extra.pop("invalid", False))
        info = self._info(extra, invalid=invalid, reward=reward)
        return obs, float(reward), bool(terminated), truncated, info

    def _info(self, extra: dict, *, invalid: bool, reward: float) -> dict:
        info = {
            "task_index": self._task_index,
            "task_id": self._task_id(self._task_index) if self._task_index is not None else None,
            "turns_used": self._turns,
            "turns_left": self.turn_budget - self._turns,
            "max_turns": self.turn_budget,
            "termination_reason": self._termination_reason,
            "invalid": invalid,
            "success": bool(self._done and self._termination_reason != TerminationReason.BUDGET.value and reward >= 1.0),
        }
        info.update(extra or {})
        return info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_obs
        return None


def _calling_time_limit() -> int | None:
    """``max_episode_steps`` of a Gymnasium ``TimeLimit`` that is resetting this env, if one is.

    One step is one turn, so ``gym.make(id, max_episode_steps=N)`` (or ``TimeLimit(env, N)``) counts what
    ``max_turns`` counts. The wrapper truncates after the env returns, so the env would report a running episode
    (``termination_reason`` None, turns left). Reading the limit from the wrapper chain that calls ``reset`` lets
    the env end the episode at the same step itself, with ``termination_reason="turn_budget"`` and reward 0.
    """
    import sys

    frame = sys._getframe(2)  # the caller of TextEnv.reset (a subclass's reset may sit between: walk up)
    limits = []
    for _ in range(32):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if not isinstance(owner, (gym.Env, gym.Wrapper)) and \
                not str(frame.f_globals.get("__name__", "")).startswith("gymnasium."):
            break  # left the wrappers (and Gymnasium's own helpers between them) around this env
        if isinstance(owner, gym.wrappers.TimeLimit):
            limits.append(owner._max_episode_steps)
        frame = frame.f_back
    return min(limits) if limits else None
