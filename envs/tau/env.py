"""The TauBench (v1 and tau2) retail and airline customer-service environments as one Gymnasium env."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from hero_gym.actions import Action, ActionParser, action_text_from_openai, get_parser
from hero_gym.data import read_text
from hero_gym.env import EnvArgumentError, TerminationReason, TextEnv
from hero_gym.envs.tau.arguments import check_arguments
from hero_gym.envs.tau.db import TauDB
from hero_gym.envs.tau.reward import TAU2_COMPONENTS, TERMINATE_TOOLS, run_tool, tau2_reward, v1_reward
from hero_gym.envs.tau.tasks import Task, load_tasks, splits, task_user_record
from hero_gym.envs.tau.users import UserSimulatorError

DEFAULT_MAX_ACTION_CHARS = 20_000
_POLICY_FILES = {"v1": ("tau-v1", "tau/v1/{domain}/wiki.md"), "tau2": ("tau2", "tau/tau2/{domain}/policy.md")}
_USER_END = {
    "###STOP###": TerminationReason.USER_STOP,
    "###TRANSFER###": TerminationReason.TRANSFER,
    "###OUT-OF-SCOPE###": TerminationReason.OUT_OF_SCOPE,
}


def domain_tools(domain: str, version: str) -> tuple[Mapping[str, Callable[..., str]], list[dict]]:
    """(tool functions, OpenAI schemas) of a domain and version, from ``envs/tau/<domain>_tools.py``."""
    mod = importlib.import_module(f"hero_gym.envs.tau.{domain}_tools")
    tools = mod.tools(version) if hasattr(mod, "tools") else (mod.TOOLS if version == "v1" else mod.TOOLS_TAU2)
    return tools, mod.schemas(version)


def _make_user(user: Any) -> Any:
    if user is None or user == "scripted":
        from hero_gym.envs.tau.users_scripted import ScriptedUser

        return ScriptedUser()
    if hasattr(user, "reset") and hasattr(user, "step"):
        return user
    if hasattr(user, "generate"):  # a Policy: let a language model play the customer
        from hero_gym.envs.tau.users import LLMUser

        return LLMUser(user)
    raise EnvArgumentError(
        f"user must be None/'scripted', a User (with reset/step) or a Policy (with generate), got {user!r:.80}"
    )


class TauEnv(TextEnv):
    """TauBench customer service: the agent talks to a simulated customer and calls tools over a shop or airline
    database, under the domain's written policy.

    ## Description
    One episode is one task: a customer (simulated by ``user``) wants something done (cancel, modify, return,
    exchange an order; book, change, cancel a flight...). The agent must authenticate the customer, follow the
    policy, call the right tools with the right arguments, and tell the customer what they asked about. Versions:
    ``"v1"`` is sierra-research/tau-bench (the HERO setting), ``"tau2"`` is tau2-bench HEAD's revision of the same
    two domains.

    ## Action Space
    Text (:class:`~hero_gym.env.AnyText`): one agent message per step, read by ``action_parser`` (default
    :func:`hero_gym.actions.parse_action`):

    - a tool call, ``{"name": "get_order_details", "arguments": {"order_id": "#W2378156"}}``, the Hermes/Qwen
      form ``<tool_call>{...}</tool_call>`` or an OpenAI assistant message ``{"content": ..., "tool_calls": [...]}``
      (only the first call of a message runs, as upstream; the others are counted in
      ``info["dropped_tool_calls"]``);
    - anything else is a message to the customer.

    An OpenAI-style assistant message dict can be turned into this text with :meth:`action_from_openai` or
    stepped directly with :meth:`step_openai`. Invalid actions (broken JSON, unknown tool, wrong, missing or
    extra arguments, wrong JSON types, text over ``max_action_chars``) never raise: the observation is an error
    string shaped like upstream's (``Unknown action foo``, ``Error: GetOrderDetails.invoke() got an unexpected
    keyword argument 'foo'``), ``info["invalid"]`` is True with ``info["invalid_reason"]``, and the database is not
    touched. JSON nested deeper than 100 levels and integers over 4,300 digits are refused with a fixed message,
    so an observation never depends on the caller's stack depth. Stepping a finished episode raises RuntimeError;
    bad constructor and ``reset`` arguments raise ValueError (:class:`~hero_gym.env.EnvArgumentError`).

    ## Observation Space
    Text: after reset, the customer's first message; after a tool call, the tool's output (``json.dumps`` of
    records, or ``Error: ...``); after a message, the customer's reply. ``info`` carries the whole conversation
    in OpenAI format (``"messages"``: system prompt = the domain policy, assistant messages with ``tool_calls``,
    ``tool`` results), the tool schemas (``"tools"``), the policy text (``"policy"``) and the base fields.

    ## Rewards
    0 on every step but the last. At the end, v1: 1.0 iff the database equals what the task's gold tool calls
    produce on a fresh database (upstream equality: ``100`` differs from ``100.0``, list order matters) AND every
    required output string appears (case-insensitive, commas removed from the agent's text) in some message the
    agent sent to the customer. tau2: the product of the task's ``reward_basis`` components (DB, COMMUNICATE,
    NL_ASSERTION with a ``judge`` Policy; without one it is listed in ``reward_info["not_evaluated"]`` and left out);
    tau2's DB equality reads numbers by value (its typed models make ``100`` and ``100.0`` equal).
    ``info["reward_info"]`` says which records differ (table/key) and which outputs are missing.

    ## Episode End
    Terminated when the customer's reply contains ``###STOP###`` (tau2 also ``###TRANSFER###`` and
    ``###OUT-OF-SCOPE###``), when the agent calls ``transfer_to_human_agents``, or when the user simulator fails.

    ## Turn Budget
    ``max_turns`` agent actions (tool calls and messages alike; default 30, upstream agents' ``max_num_steps``).
    Running out: ``truncated=True``, reward 0, reason ``turn_budget``.

    ## Termination Reasons
    ``user_stop`` (customer ended; the reward says whether it succeeded), ``transfer_to_human`` (agent transferred
    or tau2 customer asked to be transferred), ``out_of_scope`` (tau2), ``turn_budget``, ``error`` (user simulator
    failed; ``info["error"]``).

    ## Arguments
    - ``domain``: "retail" or "airline". ``version``: "v1" or "tau2". ``split``: v1 retail train/test/dev, v1
      airline test, tau2 train/test/base (default "test").
    - ``max_turns``, ``task_index`` (fix the task; else ``reset(options={"task_index": i})`` or a seeded draw),
      ``render_mode`` ("ansi": the last observation).
    - ``user``: None/"scripted" (:class:`ScriptedUser`, offline), a User object, or a Policy (an
      :class:`LLMUser` around it).
    - ``action_parser``: "auto", "json", "hermes", "react" or a callable ``str -> Action``.
    - ``judge``: a Policy grading tau2 NL assertions. ``tau2_reward_basis``: override the tasks' reward basis
      (e.g. ``("DB", "COMMUNICATE")``).
    - ``max_action_chars``: longer actions are invalid (default 20,000).
    - ``tools`` / ``tool_schemas``: replace the domain's tool table and schemas (for experiments and tests).

    ## Version History
    - v0: first release; v1 and tau2 HEAD data, copy-on-access database, cached gold states.
    """

    metadata = TextEnv.metadata
    default_max_turns = 30

    def __init__(
        self,
        domain: str = "retail",
        version: str = "v1",
        split: str = "test",
        max_turns: int | None = 30,
        task_index: int | None = None,
        user: Any = None,
        render_mode: str | None = None,
        action_parser: str | ActionParser | None = None,
        judge: Any = None,
        tau2_reward_basis: tuple[str, ...] | list[str] | None = None,
        max_action_chars: int = DEFAULT_MAX_ACTION_CHARS,
        tools: Mapping[str, Callable[..., str]] | None = None,
        tool_schemas: list[dict] | None = None,
    ):
        for name, value, allowed in (("domain", domain, "'retail' or 'airline'"), ("version", version, "'v1' or 'tau2'"),
                                     ("split", split, "a split name")):
            if not isinstance(value, str):
                raise EnvArgumentError(f"{name} must be {allowed}, got {value!r:.80}")
        try:
            known = splits(version, domain)
        except ValueError as e:
            raise EnvArgumentError(str(e)) from None
        if split not in known:
            raise EnvArgumentError(f"TauBench {version} {domain} has no split {split!r}; splits: {list(known)}")
        self.domain, self.version, self.split = domain, version, split
        self._tasks = load_tasks(version, domain, split)
        super().__init__(max_turns=max_turns, task_index=task_index, render_mode=render_mode)
        if (tools is None) != (tool_schemas is None):
            raise EnvArgumentError("give both `tools` and `tool_schemas`, or neither")
        if tools is not None and (not isinstance(tools, Mapping) or not isinstance(tool_schemas, (list, tuple))):
            raise EnvArgumentError("tools must be a mapping name -> function and tool_schemas a list of OpenAI schemas")
        if tools is None:
            tools, tool_schemas = domain_tools(domain, version)
        self.tools = tools
        self.tool_schemas = list(tool_schemas)
        self._schema_by_name = {s.get("function", s)["name"]: s for s in self.tool_schemas}
        self.policy_text = read_text(*_split_path(_POLICY_FILES[version], domain))
        self.user = _make_user(user)
        try:
            self.action_parser = get_parser(action_parser)
        except (TypeError, ValueError) as e:
            raise EnvArgumentError(str(e)) from None
        self.judge = judge
        if tau2_reward_basis is not None and (isinstance(tau2_reward_basis, str)
                                              or not isinstance(tau2_reward_basis, (list, tuple))):
            raise EnvArgumentError(f"tau2_reward_basis must be a list of components from {list(TAU2_COMPONENTS)}, "
                                   f"got {tau2_reward_basis!r:.80}")
        self.tau2_reward_basis = None if tau2_reward_basis is None else tuple(tau2_reward_basis)
        if version == "v1" and self.tau2_reward_basis is not None:
            raise EnvArgumentError("tau2_reward_basis applies to version='tau2' only")
        bad = [c for c in self.tau2_reward_basis or () if c not in TAU2_COMPONENTS]
        if bad:
            raise EnvArgumentError(f"unknown tau2 reward component(s) {bad}; known: {list(TAU2_COMPONENTS)}")
        if judge is not None and not hasattr(judge, "generate"):
            raise EnvArgumentError(f"judge must be None or a Policy (with generate), got {judge!r:.80}")
        if isinstance(max_action_chars, bool) or not isinstance(max_action_chars, int) or max_action_chars < 1:
            raise EnvArgumentError(f"max_action_chars must be a positive integer, got {max_action_chars!r}")
        self.max_action_chars = max_action_chars
        self.db: TauDB | None = None
        self._messages: list[dict] = []
        self._said: list[str] = []
        self._reward_info: dict | None = None

    # ----- TextEnv hooks ----------------------------------------------------------------------------------------
    def _num_tasks(self) -> int:
        return len(self._tasks)

    def _task_id(self, task_index: int) -> str:
        return self._tasks[task_index].id

    def _reset_task(self, task_index: int) -> tuple[str, dict]:
        task = self._tasks[task_index]
        self.db = TauDB(self.version, self.domain)
        self._said = []
        self._reward_info = None
        user_seed = int(self.np_random.integers(2**31 - 1))
        first = self.user.reset(task, user_seed, user_record=task_user_record(task))
        if not isinstance(first, str):
            raise TypeError(f"user.reset() returned {type(first).__name__}, expected str")
        self._messages = [
            {"role": "system", "content": self.policy_text},
            {"role": "user", "content": first},
        ]
        return first, self._extra({"user_seed": user_seed})

    def _step_turn(self, action: str) -> tuple[str, float, bool, str | None, dict]:
        if len(action) > self.max_action_chars:
            reason = f"action is {len(action)} characters long; the limit is {self.max_action_chars}"
            return self._invalid(action[: self.max_action_chars], reason, f"Error: {reason}")
        try:
            parsed = self.action_parser(action)
        except Exception as e:  # noqa: BLE001 -- a user-supplied parser failing is a bad action, not a crash
            reason = f"action parser raised {type(e).__name__}: {e}"
            return self._invalid(action, reason, f"Error: {reason}")
        if not isinstance(parsed, Action):
            reason = f"action parser returned {type(parsed).__name__}, expected Action"
            return self._invalid(action, reason, f"Error: {reason}")
        if parsed.kind == "tool":
            if not isinstance(parsed.name, str) or not isinstance(parsed.arguments, dict):
                reason = "action parser returned a tool call without a string name and a dict of arguments"
                return self._invalid(action, reason, f"Error: {reason}")
            return self._tool_turn(parsed)
        if parsed.kind == "message" and isinstance(parsed.content, str):
            return self._message_turn(parsed.content)
        return self._invalid(action, parsed.error or "invalid action", f"Error: {parsed.error or 'invalid action'}")

    # ----- turns ------------------------------------------------------------------------------------------------
    def _tool_turn(self, act: Action) -> tuple[str, float, bool, str | None, dict]:
        call_id = f"call_{self._turns}"
        self._messages.append({
            "role": "assistant",
            "content": act.content,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": act.name, "arguments": _dumps(act.arguments)}}],
        })
        extra: dict[str, Any] = {"tool_name": act.name}
        if act.dropped_calls:  # one call per turn: the others in the same message did not run
            extra["dropped_tool_calls"] = act.dropped_calls
        schema = self._schema_by_name.get(act.name)
        if schema is None or act.name not in self.tools:
            obs = f"Unknown action {act.name}"
            extra.update(invalid=True, invalid_reason=f"unknown tool {act.name!r}")
        else:
            err = check_arguments(act.name, act.arguments, schema)
            if err is not None:
                obs = f"Error: {err}"
                extra.update(invalid=True, invalid_reason=err)
            else:
                obs = run_tool(self.db, self.tools, act.name, act.arguments)
        self._messages.append({"role": "tool", "tool_call_id": call_id, "name": act.name, "content": obs})
        if act.name in TERMINATE_TOOLS and not extra.get("invalid"):
            return self._finish(obs, TerminationReason.TRANSFER, extra)
        return obs, 0.0, False, None, self._extra(extra)

    def _message_turn(self, content: str) -> tuple[str, float, bool, str | None, dict]:
        self._messages.append({"role": "assistant", "content": content})
        self._said.append(content)
        try:
            reply = self.user.step(content)
            if not isinstance(reply, str):
                raise UserSimulatorError(f"user.step() returned {type(reply).__name__}, expected str")
        except Exception as e:  # noqa: BLE001 -- any user failure ends this episode with reason "error", not the run
            error = str(e) if isinstance(e, UserSimulatorError) else f"user simulator raised {type(e).__name__}: {e}"
            self._messages.append({"role": "user", "content": ""})
            return self._finish("", TerminationReason.ERROR, {"error": error}, score=False)
        self._messages.append({"role": "user", "content": reply})
        ends = ("###STOP###",) if self.version == "v1" else tuple(_USER_END)
        for token in ends:
            if token in reply:
                return self._finish(reply, _USER_END[token], {})
        return reply, 0.0, False, None, self._extra({})

    def _invalid(self, shown_action: str, reason: str, obs: str) -> tuple[str, float, bool, str | None, dict]:
        # No tool call could be read, so there is no tool message to answer; the error goes back as a user-role
        # message, which every chat template and OpenAI-compatible server accepts.
        self._messages.append({"role": "assistant", "content": shown_action})
        self._messages.append({"role": "user", "content": obs})
        return obs, 0.0, False, None, self._extra({"invalid": True, "invalid_reason": reason})

    def _finish(self, obs: str, reason: TerminationReason, extra: dict, *, score: bool = True):
        if score:
            reward, info = self.compute_reward()
        else:
            reward, info = 0.0, {"reward": 0.0, "reason": extra.get("error", "episode ended with an error")}
        self._reward_info = info
        extra = dict(extra, reward_info=info)
        return obs, reward, True, reason.value, self._extra(extra)

    # ----- reward -----------------------------------------------------------------------------------------------
    def compute_reward(self) -> tuple[float, dict]:
        """The reward of the current database and conversation, as if the episode ended now."""
        if self.db is None or self._task_index is None:
            raise RuntimeError("compute_reward() needs an episode: call reset() first")
        task = self.task
        if self.version == "v1":
            return v1_reward(task, self.db, self._said, self.tools)
        return tau2_reward(
            task, self.db, self._said, self.tools, basis=self.tau2_reward_basis, judge=self.judge, messages=self._messages
        )

    # ----- info -------------------------------------------------------------------------------------------------
    def _extra(self, extra: dict) -> dict:
        out = {
            "messages": list(self._messages),
            "tools": self.tool_schemas,
            "policy": self.policy_text,
            "domain": self.domain,
            "version": self.version,
            "split": self.split,
        }
        out.update(extra)
        if not out.get("invalid"):
            out.setdefault("invalid_reason", None)
        if self._turns >= self.max_turns and "reward_info" not in out:
            # The base class truncates this step with reward 0; say why in the same place a reward is explained.
            out["reward_info"] = {"reward": 0.0, "reason": f"turn budget of {self.max_turns} actions ran out"}
        return out

    # ----- public helpers ---------------------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        """The current episode's task (after reset)."""
        if self._task_index is None:
            raise RuntimeError("no task yet: call reset() first")
        return self._tasks[self._task_index]

    @property
    def tasks(self) -> tuple[Task, ...]:
        """All tasks of this env's split."""
        return self._tasks

    def gold_actions(self, task_index: int | None = None) -> list[dict]:
        """Gold tool calls ``{"name", "kwargs"}`` of a task (default: the current one)."""
        if task_index is None:
            return self.task.gold_actions
        return self._tasks[self._check_task_index(task_index)].gold_actions

    @staticmethod
    def action_from_openai(message: dict) -> str:
        """The text action for an OpenAI-style assistant message (first tool call, else its content)."""
        return action_text_from_openai(message)

    def step_openai(self, message: dict):
        """`step` with an OpenAI-style assistant message dict instead of text."""
        return self.step(action_text_from_openai(message))


def _split_path(spec: tuple[str, str], domain: str) -> tuple[str, str]:
    dataset, path = spec
    return dataset, path.format(domain=domain)


def _dumps(arguments: dict) -> str:
    try:
        return json.dumps(arguments)
    except (TypeError, ValueError):  # a custom parser handed us something JSON cannot hold
        return str(arguments)
