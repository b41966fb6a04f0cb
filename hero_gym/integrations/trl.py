"""TRL: train on hero-gym envs with ``trl.GRPOTrainer``. Needs the ``trl`` extra (``pip install 'hero-gym[trl]'``).

Two ways, pick by who should drive the conversation:

1. ``environment_factory`` (TRL drives): the env's actions become tool methods the model calls. TauBench: one
   method per tool, generated from the env's tool schemas (names, argument types, descriptions, enums), plus
   ``send_message_to_customer`` to talk to the simulated customer (its reply is the tool result). WebShop:
   ``search(query)`` and ``click(value)``. ``reset`` starts the dataset row's task and returns its first
   observation; ``get_reward`` is the env's reward (0 while the episode is unfinished, as for a truncated one)::

       from hero_gym.integrations.trl import environment_factory, task_dataset
       trainer = GRPOTrainer(model=..., args=GRPOConfig(...), environment_factory=environment_factory(env_id),
                             train_dataset=task_dataset(env_id, split="train"))

2. ``rollout_func`` (hero-gym drives): :func:`make_rollout_func` runs whole episodes with
   :func:`hero_gym.rollout.run_episodes` on the trainer's own model, so TRL trains on hero-gym's token-exact
   multi-turn trajectories: the env's tokens are in the completion with ``env_mask`` 0, the agent's with their
   sampling log-probs. The episode reward arrives as the ``env_reward`` column for :func:`env_reward`::

       trainer = GRPOTrainer(model=..., reward_funcs=env_reward, rollout_func=make_rollout_func(env_id),
                             train_dataset=task_dataset(env_id, split="train"), ...)

The environment-factory tools lose the inner structure of nested arguments (an array of objects becomes
``list[dict]``): transformers builds tool schemas from Python type hints. The descriptions keep the upstream text.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from hero_gym.extras import require_extra

require_extra("trl", "trl", "datasets")

from hero_gym.registry import get_spec, make  # noqa: E402

_ENDED = "The episode has ended; no further action is taken."
TASK_KEY = "hero_gym_task_index"  # carried on the dataset prompt's user message (rollout_func sees prompts only)


def _family(env_id: str) -> str:
    entry = get_spec(env_id).entry_point
    if entry.endswith(":TauEnv"):
        return "tau"
    if entry.endswith(":WebShopEnv"):
        return "webshop"
    raise ValueError(f"no TRL tool mapping for {env_id} (entry point {entry}); TauBench and WebShop envs have one")


class HeroGymToolEnv:
    """Base of the generated TRL environments: one hero-gym episode per rollout; tool methods take one turn each."""

    env_id: str = ""
    env_kwargs: dict = {}

    def __init__(self):
        self.env = make(self.env_id, **self.env_kwargs)
        self._reward, self._done, self._info = 0.0, True, {}

    def reset(self, task_index: int | None = None, seed: int | None = None, **_: Any) -> str:
        """Start the row's task (``task_index``; otherwise a seeded draw) and return its first observation."""
        options = {"task_index": int(task_index)} if task_index is not None else None
        obs, self._info = self.env.reset(seed=None if seed is None else int(seed), options=options)
        self._reward, self._done = 0.0, False
        return obs

    def get_reward(self) -> float:
        """The env's reward for the episode: 0 unless the episode ended by the task's own rule."""
        return float(self._reward) if self._done else 0.0

    def _act(self, action: str) -> str:
        if self._done:
            return _ENDED
        obs, reward, terminated, truncated, self._info = self.env.step(action)
        self._reward += reward
        self._done = bool(terminated or truncated)
        return obs


_JSON_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict}


def _py_type(prop: dict) -> Any:
    kind = prop.get("type", "string")
    if isinstance(kind, list):  # ["string", "null"]: the non-null one
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "array":
        return list[_py_type(prop.get("items") or {})]
    return _JSON_TYPES.get(kind, str)


def _tool_method(schema: dict):
    """A method ``name(self, *, arg: type, ...) -> str`` that steps the env with the JSON tool call."""
    fn = schema.get("function", schema)
    name, params = fn["name"], fn.get("parameters") or {}
    props, required = params.get("properties") or {}, set(params.get("required") or [])

    def method(self, **kwargs):
        return self._act(json.dumps({"name": name, "arguments": kwargs}))

    sig_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    doc_args = []
    for arg, prop in props.items():
        sig_params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, annotation=_py_type(prop),
                                            default=inspect.Parameter.empty if arg in required else None))
        desc = " ".join(str(prop.get("description") or arg).split())
        if prop.get("enum"):  # transformers reads "(choices: [...])" at the end of a description as an enum
            desc += f" (choices: {json.dumps(prop['enum'])})"
        doc_args.append(f"    {arg}: {desc}")
    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(sig_params, return_annotation=str)
    method.__annotations__ = {p.name: p.annotation for p in sig_params[1:]} | {"return": str}
    description = " ".join(str(fn.get("description") or name).split())
    method.__doc__ = description + ("\n\nArgs:\n" + "\n".join(doc_args) if doc_args else "") + \
        "\n\nReturns:\n    The tool's output."
    return method


def send_message_to_customer(self, message: str) -> str:
    """Send a message to the customer and get their reply.

    Args:
        message: What to tell or ask the customer.

    Returns:
        The customer's reply.
    """
    return self._act(message)


def search(self, query: str) -> str:
    """Search the shop (only on a page with a search box).

    Args:
        query: The search terms.

    Returns:
        The page the search leads to.
    """
    return self._act(f"search[{query}]")


def click(self, value: str) -> str:
    """Click a button, link or option on the current page, by its text.

    Args:
        value: The text of what to click, e.g. an item id, an option value, "Buy Now", "Next >", "< Prev".

    Returns:
        The page the click leads to.
    """
    return self._act(f"click[{value}]")


_CLASSES: dict[tuple, type] = {}


def environment_factory(env_id: str, **env_kwargs: Any) -> type:
    """A zero-argument class TRL calls for each rollout (pass it as ``environment_factory=``).

    One class per (env id, kwargs), so TRL logs its reward under one name. ``env_kwargs`` go to
    :func:`hero_gym.make` (split, max_turns, user, ...).
    """
    key = (env_id, json.dumps(env_kwargs, sort_keys=True, default=repr))
    if key in _CLASSES:
        return _CLASSES[key]
    family = _family(env_id)
    if family == "tau":
        from hero_gym.envs.tau.env import domain_tools

        spec = get_spec(env_id)
        schemas = env_kwargs.get("tool_schemas") or domain_tools(spec.kwargs["domain"], spec.kwargs["version"])[1]
        methods = {m.__name__: m for m in map(_tool_method, schemas)}
        if "send_message_to_customer" in methods:
            raise ValueError("a tool named send_message_to_customer would hide the message tool")
        methods["send_message_to_customer"] = send_message_to_customer
    else:
        methods = {"search": search, "click": click}
    name = env_id.split("/")[-1].replace("-", "_") + "TRLEnv"
    cls = type(name, (HeroGymToolEnv,), {"env_id": env_id, "env_kwargs": dict(env_kwargs), **methods,
                                         "__doc__": f"{env_id} as a TRL environment (tools: {sorted(methods)})."})
    _CLASSES[key] = cls
    return cls


def task_dataset(env_id: str, *, split: str | None = None, tasks: list[int] | None = None,
                 instructions: str | None = None, system_prompt: bool = True, **env_kwargs: Any):
    """A ``datasets.Dataset`` with one row per task: ``prompt`` (the env's system prompt when it has one and
    `system_prompt` is set, then a user message the first observation is appended to) and ``task_index`` (what
    ``reset`` receives)."""
    from datasets import Dataset

    spec = get_spec(env_id)
    split = split or spec.default_split
    env = make(env_id, split=split, **env_kwargs)
    n = env.unwrapped.num_tasks
    tasks = list(range(n)) if tasks is None else [int(t) for t in tasks]
    bad = [t for t in tasks if not 0 <= t < n]
    if bad:
        raise ValueError(f"task indices {bad[:5]} are out of range for {env_id} split {split!r} ({n} tasks)")
    _, info = env.reset(seed=0, options={"task_index": tasks[0]} if tasks else None)
    system = next((m["content"] for m in info.get("messages", []) if m.get("role") == "system"), None) \
        if system_prompt else None
    if instructions is None:
        instructions = ("A customer is contacting you. Use the tools; talk to the customer only through "
                        "send_message_to_customer. The customer says:\n" if _family(env_id) == "tau"
                        else "Shop for what the instruction asks, with the search and click tools.\n")
    rows = []
    for t in tasks:
        prompt = ([{"role": "system", "content": system, TASK_KEY: None}] if system else []) + \
                 [{"role": "user", "content": instructions, TASK_KEY: t}]
        rows.append({"prompt": prompt, "task_index": t})
    return Dataset.from_list(rows)


def env_reward(completions=None, env_reward: list[float] | None = None, **_: Any) -> list[float]:
    """Reward function for :func:`make_rollout_func`: the episode rewards it returned."""
    if env_reward is None:
        raise ValueError("env_reward needs the 'env_reward' column that make_rollout_func returns")
    return [float(r) for r in env_reward]


def make_rollout_func(env_id: str, *, split: str | None = None, max_new_tokens: int | None = None,
                      temperature: float | None = None, seed: int = 0, **env_kwargs: Any):
    """A TRL ``rollout_func`` that plays each prompt's task (``task_dataset`` rows) as a whole hero-gym episode with
    the trainer's model, token-exact (see the module docstring). Episode seeds derive from (seed, step, position)."""
    from hero_gym.policies.hf import HFPolicy
    from hero_gym.rollout import EpisodeSpec, run_episodes

    spec = get_spec(env_id)

    def rollout_func(prompts: list, trainer) -> dict:
        tasks = []
        for p in prompts:
            found = [m.get(TASK_KEY) for m in p if isinstance(m, dict) and m.get(TASK_KEY) is not None]
            if not found:
                raise ValueError(f"a prompt carries no {TASK_KEY}: build the dataset with task_dataset()")
            tasks.append(int(found[-1]))
        args = trainer.args
        policy = HFPolicy(trainer.model, tokenizer=trainer.processing_class, name="trl")
        step = int(trainer.state.global_step)
        specs = [EpisodeSpec(task_index=t, seed=seed * 1_000_003 + step * 10_007 + i, split=split or spec.default_split)
                 for i, t in enumerate(tasks)]
        trajs = run_episodes(env_id, policy, specs, env_kwargs=env_kwargs,
                             max_new_tokens=max_new_tokens or args.max_completion_length,
                             temperature=args.temperature if temperature is None else temperature)
        out = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "env_reward": []}
        for traj in trajs:
            if traj.error:
                raise RuntimeError(f"episode of task {traj.task_index} failed: {traj.error}")
            completion, mask, logps = [], [], []
            for turn in traj.turns:
                if turn.action_logprobs is None or len(turn.action_logprobs) != len(turn.action_token_ids):
                    raise RuntimeError("the policy returned no per-token log-probs; TRL needs them")
                completion += turn.action_token_ids + turn.obs_token_ids
                mask += [1] * len(turn.action_token_ids) + [0] * len(turn.obs_token_ids)
                logps += list(turn.action_logprobs) + [0.0] * len(turn.obs_token_ids)
            out["prompt_ids"].append(list(traj.prompt_token_ids))
            out["completion_ids"].append(completion)
            out["env_mask"].append(mask)
            out["logprobs"].append(logps)
            out["env_reward"].append(float(traj.reward))
        return out

    return rollout_func
