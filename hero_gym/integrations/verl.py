"""verl: hero-gym episodes as verl agent-loop outputs (verl's multi-turn interface, ``AgentLoopBase.run``).

What is tested here and what is not: verl (0.9.1 on the package index) pins ``transformers<5.11`` and pulls Ray's
dashboard extras, wandb and tensorboard, so it is not installed beside hero-gym's stack, and its agent loop needs a
running inference server manager. The pure-Python part below is tested without verl:

* :class:`TokenServerPolicy`: a hero-gym Policy over any token-in/token-out generate function (verl's
  ``server_manager.generate``, a vLLM or SGLang engine), so :func:`hero_gym.rollout.run_episodes` keeps its
  token-exact bookkeeping (generated ids are never re-tokenized; only env text is);
* :func:`agent_loop_output_fields`: a Trajectory as the fields of verl's ``AgentLoopOutput`` (``prompt_ids``,
  ``response_ids``, ``response_mask`` 1 on generated tokens and 0 on env tokens, ``response_logprobs``,
  ``reward_score``, ``num_turns``), cut to ``response_length`` as verl's own loops do;
* :func:`verl_rows`: dataset rows (write them to Parquet for verl's ``RLHFDataset``) naming the agent loop and, in
  ``extra_info``, the env, task and episode seed.

:func:`register_agent_loop` (needs verl) joins them: a registered ``AgentLoopBase`` whose ``run`` plays the row's
task with the rollout server and returns an ``AgentLoopOutput``. Recipe (untested here, see above)::

    # rows -> parquet
    import pandas as pd; pd.DataFrame(verl_rows("hero_gym/WebShop-v0", split="train")).to_parquet("train.parquet")
    # a module that verl imports in every worker (actor_rollout_ref.rollout.agent.agent_loop_config_path, or
    # VERL_USE_EXTERNAL_MODULES=my_module): from hero_gym.integrations.verl import register_agent_loop
    #                                        register_agent_loop("hero_gym")
    # then: python -m verl.trainer.main_ppo data.train_files=train.parquet \\
    #         actor_rollout_ref.rollout.mode=async actor_rollout_ref.rollout.multi_turn.enable=True ...
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from hero_gym.evaluate import episode_seed
from hero_gym.registry import get_spec, make
from hero_gym.types import Generation, Trajectory

# (prompt token ids, sampling params) -> (generated token ids, their log-probs or None)
GenerateFn = Callable[[list[int], dict], "tuple[list[int], list[float] | None]"]


class TokenServerPolicy:
    """A Policy that generates from token ids with `generate_fn` and decodes with `tokenizer`.

    It exposes ``tokenizer``, so the rollout engine sends ``ChatRequest.prompt_token_ids`` (the conversation kept
    as ids turn by turn) instead of messages. ``sampling_params`` (e.g. ``{"temperature": 1.0}``) are passed on, with
    each request's ``max_new_tokens`` as ``max_tokens`` unless set.
    """

    def __init__(self, generate_fn: GenerateFn, tokenizer, sampling_params: dict | None = None, name: str = "token-server"):
        self.generate_fn, self.tokenizer, self.name = generate_fn, tokenizer, name
        self.sampling_params = dict(sampling_params or {})

    def generate(self, requests) -> list[Generation]:
        out = []
        for r in requests:
            if r.prompt_token_ids is None:
                out.append(Generation(text="", error="TokenServerPolicy needs prompt_token_ids (a tokenizer with a "
                                                     "chat template)", finish_reason="error"))
                continue
            params = {"max_tokens": r.max_new_tokens, **self.sampling_params}
            try:
                ids, logprobs = self.generate_fn(list(r.prompt_token_ids), params)
            except Exception as e:  # one failed request ends its episode, not the batch
                out.append(Generation(text="", error=f"{type(e).__name__}: {e}", finish_reason="error"))
                continue
            ids = list(ids)
            if logprobs is not None and len(logprobs) != len(ids):
                out.append(Generation(text="", error=f"generate_fn returned {len(logprobs)} log-probs for {len(ids)} "
                                                     "tokens", finish_reason="error"))
                continue
            out.append(Generation(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids,
                                  logprobs=None if logprobs is None else [float(x) for x in logprobs],
                                  prompt_token_ids=list(r.prompt_token_ids)))
        return out


def agent_loop_output_fields(traj: Trajectory, response_length: int | None = None) -> dict[str, Any]:
    """verl ``AgentLoopOutput`` fields of a token-exact Trajectory (everything after the prompt is the response)."""
    if traj.error:
        raise RuntimeError(f"episode of task {traj.task_index} failed: {traj.error}")
    if not traj.prompt_token_ids:
        raise ValueError("the trajectory has no token ids: run it with a tokenizer-backed policy (TokenServerPolicy)")
    response, mask, logprobs, have_logprobs = [], [], [], True
    for turn in traj.turns:
        response += turn.action_token_ids + turn.obs_token_ids
        mask += [1] * len(turn.action_token_ids) + [0] * len(turn.obs_token_ids)
        have_logprobs &= turn.action_logprobs is not None
        logprobs += list(turn.action_logprobs or [0.0] * len(turn.action_token_ids)) + [0.0] * len(turn.obs_token_ids)
    cut = slice(None, response_length)
    return {
        "prompt_ids": list(traj.prompt_token_ids),
        "response_ids": response[cut],
        "response_mask": mask[cut],
        "response_logprobs": logprobs[cut] if have_logprobs else None,
        "reward_score": float(traj.reward),
        # verl counts chat turns of every role; ours are agent turns: the prompt, then an action and an answer each.
        "num_turns": 1 + 2 * traj.num_turns,
        "extra_fields": {"termination_reason": traj.termination_reason, "success": traj.success,
                         "agent_turns": traj.num_turns, "truncated_response": response_length is not None
                         and len(response) > response_length},
    }


def verl_rows(env_id: str, *, split: str | None = None, tasks: list[int] | None = None, seed: int = 0,
              attempts: int = 1, agent_name: str = "hero_gym") -> list[dict]:
    """Rows for verl's RLHFDataset: one per (task, attempt), the episode seed as ``hero-gym eval`` derives it."""
    spec = get_spec(env_id)
    split = split or spec.default_split
    n = make(env_id, split=split).unwrapped.num_tasks
    tasks = list(range(n)) if tasks is None else [int(t) for t in tasks]
    bad = [t for t in tasks if not 0 <= t < n]
    if bad:
        raise ValueError(f"task indices {bad[:5]} are out of range for {env_id} split {split!r} ({n} tasks)")
    return [{"data_source": env_id, "agent_name": agent_name,
             # verl's dataset needs a prompt; the agent loop replaces it with the env's own conversation
             "prompt": [{"role": "user", "content": f"{env_id} {split} task {t}"}],
             "extra_info": {"env_id": env_id, "split": split, "task_index": t, "seed": episode_seed(seed, t, a)}}
            for t in tasks for a in range(attempts)]


def run_row(extra_info: dict, generate_fn: GenerateFn, tokenizer, *, sampling_params: dict | None = None,
            max_new_tokens: int = 512, response_length: int | None = None, env_kwargs: dict | None = None) -> dict:
    """Play one :func:`verl_rows` row with `generate_fn`; return its ``AgentLoopOutput`` fields."""
    from hero_gym.rollout import EpisodeSpec, run_episodes

    missing = [k for k in ("env_id", "task_index") if extra_info.get(k) is None]
    if missing:
        raise ValueError(f"extra_info lacks {missing}: build the dataset with verl_rows()")
    policy = TokenServerPolicy(generate_fn, tokenizer, sampling_params)
    (traj,) = run_episodes(extra_info["env_id"], policy,
                           [EpisodeSpec(task_index=int(extra_info["task_index"]), seed=extra_info.get("seed"),
                                        split=extra_info.get("split"))],
                           env_kwargs=env_kwargs, max_new_tokens=max_new_tokens)
    return agent_loop_output_fields(traj, response_length)


def _agent_loop_class():
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput
    except ImportError as e:
        raise ImportError(f"the verl agent loop needs verl (pip install verl): {e}") from e

    class HeroGymAgentLoop(AgentLoopBase):
        """Plays the row's hero-gym task (``extra_info`` from :func:`verl_rows`) with verl's rollout server."""

        async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
            loop = asyncio.get_running_loop()
            extra = dict(kwargs.get("extra_info") or {})
            length = int(self.rollout_config.response_length)

            def generate_fn(prompt_ids, params):
                from uuid import uuid4

                out = asyncio.run_coroutine_threadsafe(self.server_manager.generate(
                    request_id=uuid4().hex, prompt_ids=prompt_ids, sampling_params={**sampling_params, **params}),
                    loop).result()
                return out.token_ids, out.log_probs or None

            # run_episodes is synchronous: it runs in a thread and hands each generation back to this loop.
            fields = await asyncio.to_thread(run_row, extra, generate_fn, self.tokenizer, max_new_tokens=length,
                                             response_length=length, env_kwargs=extra.get("env_kwargs"))
            return AgentLoopOutput(**fields, metrics=AgentLoopMetrics())

    HeroGymAgentLoop.__module__, HeroGymAgentLoop.__qualname__ = __name__, "HeroGymAgentLoop"
    return HeroGymAgentLoop


def __getattr__(name: str):
    # verl instantiates agent loops by import path (hydra ``_target_``): build the class on first access only, so
    # importing this module never needs verl.
    if name == "HeroGymAgentLoop":
        cls = _agent_loop_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_agent_loop(name: str = "hero_gym"):
    """Register :class:`HeroGymAgentLoop` with verl under `name` (the rows' ``agent_name``). Needs verl."""
    cls = __getattr__("HeroGymAgentLoop")
    from verl.experimental.agent_loop.agent_loop import register

    return register(name)(cls)
