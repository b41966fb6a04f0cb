"""Inspect AI: every hero-gym env as an Inspect task. Needs the ``inspect`` extra (``pip install 'hero-gym[inspect]'``).

::

    inspect eval hero_gym/integrations/inspect_tasks.py@hero_gym_task \\
        -T env_id=hero_gym/Tau2Retail-v0 -T split=test -T max_turns=30 --model openai/gpt-4o-mini
    inspect view                                   # the logs: every turn, tool call and observation

    from inspect_ai import eval
    from hero_gym.integrations.inspect_tasks import hero_gym_task
    eval(hero_gym_task("hero_gym/WebShop-v0", tasks=[0, 1, 2]), model="openai/gpt-4o-mini", epochs=4)

The dataset holds one sample per task index (``metadata``: task index and episode seed, the same seed
``hero-gym eval`` uses for attempt = epoch - 1). The solver drives the env turn by turn: it asks the model for
the next assistant message and steps the env with it; the env's answer joins the conversation. On TauBench the
env's tools are Inspect tools with the env's own JSON schemas: a tool call runs in the env (only the first call of a
message, as upstream; the others get a tool message saying so) and its output comes back as the tool result;
plain text is a message to the customer, whose reply comes back as a user message. On WebShop an action is the
text ``search[...]`` / ``click[...]``. The scorer reports the env's reward, success and the turns used.
"""

from __future__ import annotations

import json
from typing import Any

from hero_gym.extras import require_extra

require_extra("inspect", "inspect_ai")

from inspect_ai import Task, task  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.model import (  # noqa: E402
    ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser, get_model)
from inspect_ai.scorer import Score, Target, mean, scorer, stderr  # noqa: E402
from inspect_ai.solver import Generate, TaskState, solver  # noqa: E402
from inspect_ai.tool import ToolInfo, ToolParams  # noqa: E402
from inspect_ai.util import JSONSchema  # noqa: E402

from hero_gym.evaluate import episode_seed  # noqa: E402
from hero_gym.registry import get_spec, make  # noqa: E402

_RESULT = "hero_gym_result"  # the TaskState.store key the solver leaves for the scorer
ONLY_FIRST_CALL = "Not run: only the first tool call of a message runs."


def tool_infos(tools: list[dict] | None) -> list[ToolInfo]:
    """Inspect tool descriptions from OpenAI function schemas (the env's ``info["tools"]``), schemas kept whole."""
    out = []
    for schema in tools or []:
        fn = schema.get("function", schema)
        params = fn.get("parameters") or {}
        out.append(ToolInfo(
            name=fn["name"], description=fn.get("description") or fn["name"],
            parameters=ToolParams(properties={k: JSONSchema.model_validate(v) for k, v in
                                              (params.get("properties") or {}).items()},
                                  required=list(params.get("required") or []))))
    return out


def _inspect_messages(messages: list[dict], first_obs: str):
    out = [ChatMessageSystem(content=m["content"]) for m in messages if m.get("role") == "system"]
    return out + [ChatMessageUser(content=first_obs)]


def action_text(message: ChatMessageAssistant) -> str:
    """The env action for an assistant message: its first tool call as JSON, else its text."""
    if message.tool_calls:
        call = message.tool_calls[0]
        return json.dumps({"name": call.function, "arguments": call.arguments})
    return message.text


@solver
def env_solver(env_id: str, split: str | None = None, max_turns: int | None = None, **env_kwargs: Any):
    """Play the sample's task in a fresh env, one model call per turn, until the episode ends."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        kw = dict(env_kwargs, split=split or get_spec(env_id).default_split)
        if max_turns is not None:
            kw["max_turns"] = max_turns
        env = make(env_id, **kw)
        try:
            obs, info = env.reset(seed=state.metadata["seed"], options={"task_index": state.metadata["task_index"]})
            tools = tool_infos(info.get("tools"))
            state.messages = _inspect_messages(info.get("messages") or [], obs)
            model = get_model()
            reward, terminated, truncated, turns = 0.0, False, False, 0
            while not (terminated or truncated):
                output = await model.generate(state.messages, tools=tools)
                state.output = output
                message = output.message
                state.messages.append(message)
                obs, r, terminated, truncated, info = env.step(action_text(message))
                reward += r
                turns += 1
                if message.tool_calls:
                    first, *rest = message.tool_calls
                    state.messages.append(ChatMessageTool(content=obs, tool_call_id=first.id, function=first.function))
                    state.messages += [ChatMessageTool(content=ONLY_FIRST_CALL, tool_call_id=c.id, function=c.function)
                                       for c in rest]
                else:
                    state.messages.append(ChatMessageUser(content=obs))
            state.store.set(_RESULT, {"reward": float(reward), "success": bool(info.get("success")), "turns": turns,
                                      "termination_reason": info.get("termination_reason"),
                                      "reward_info": json.loads(json.dumps(info.get("reward_info") or {}, default=str))})
        finally:
            env.close()
        return state

    return solve


@scorer(metrics={"reward": [mean(), stderr()], "success": [mean()], "turns": [mean()]})
def env_scorer():
    """The env's reward, success (0/1) and turns used; the termination reason is the explanation."""

    async def score(state: TaskState, target: Target) -> Score:
        result = state.store.get(_RESULT)
        if result is None:
            raise RuntimeError("the episode did not finish: env_solver left no result")
        return Score(value={"reward": result["reward"], "success": float(result["success"]), "turns": result["turns"]},
                     answer=state.output.completion if state.output else None,
                     explanation=result["termination_reason"], metadata={"reward_info": result["reward_info"]})

    return score


def task_samples(env_id: str, *, split: str | None = None, tasks: list[int] | None = None, seed: int = 0,
                 epochs: int = 1) -> MemoryDataset:
    """One sample per task index (``epochs`` > 1: one per (task, attempt), each with its hero-gym episode seed)."""
    spec = get_spec(env_id)
    split = split or spec.default_split
    if split not in spec.splits:
        raise ValueError(f"{env_id} has no split {split!r}; splits: {sorted(spec.splits)}")
    n = make(env_id, split=split).unwrapped.num_tasks
    tasks = list(range(n)) if tasks is None else [int(t) for t in tasks]
    bad = [t for t in tasks if not 0 <= t < n]
    if bad:
        raise ValueError(f"task indices {bad[:5]} are out of range for {env_id} split {split!r} ({n} tasks)")
    return MemoryDataset([
        Sample(input=f"{env_id} {split} task {t}", id=f"{t}-{a}" if epochs > 1 else t,
               metadata={"task_index": t, "attempt": a, "seed": episode_seed(seed, t, a)})
        for t in tasks for a in range(epochs)], name=f"{env_id}:{split}")


@task
def hero_gym_task(env_id: str = "hero_gym/Tau2Retail-v0", split: str | None = None, tasks: list[int] | None = None,
                  max_turns: int | None = None, seed: int = 0, attempts: int = 1, **env_kwargs: Any) -> Task:
    """A hero-gym env as an Inspect task (see the module docstring). ``attempts``: episodes per task, seeded as
    ``hero-gym eval --k`` seeds them (Inspect's own ``epochs`` would reuse one seed)."""
    if isinstance(tasks, (int, str)):  # `-T tasks=3` on the command line
        tasks = [int(t) for t in str(tasks).split(",")]
    return Task(dataset=task_samples(env_id, split=split, tasks=tasks, seed=seed, epochs=attempts),
                solver=env_solver(env_id, split=split, max_turns=max_turns, **env_kwargs), scorer=env_scorer(),
                name=env_id.split("/")[-1])
