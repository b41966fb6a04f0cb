"""The rollout engine: many episodes advanced together, kept token-exact, turned into Trajectories.

Each round, every live episode's next request goes to ``policy.generate`` as ONE batch; then every env steps with
its episode's action. Episodes start as others finish (at most `batch_size` live at once), so a batch stays full.

Token ids: when the policy exposes a ``tokenizer`` with a chat template (HFPolicy does), each episode's
conversation is kept as ids turn by turn with :class:`hero_gym.chat.ConversationTokens` and sent as
``ChatRequest.prompt_token_ids``: generated ids are never re-tokenized, and ``Trajectory.token_ids()`` is exactly
what the model saw and produced. Other policies (HTTP, scripted) get messages only; their trajectories carry text
and whatever ids the backend returned.

Seeds: the env is reset with the episode's seed; the request of turn t gets a seed derived from (episode seed, t)
with numpy's SeedSequence, so a trajectory depends only on its own seed, not on batching or on other episodes.
An episode with ``seed=None`` samples with fresh randomness.

Trajectory fields filled here: prompt/turn token ids and logprobs (token-exact policies only), messages and tools
(the env's, or built from actions and observations when the env gives none), reward (sum of step rewards),
success/terminated/truncated/termination_reason/reward_info (from the env's last step), env_steps, tokens_in (the
context length of every request summed: what the backend processed), tokens_out (generated tokens), wall_time_s
(reset to end, including waiting for the batch), env_time_s (time inside env reset/step), gen_time_s (the episode's
share of each batched generate call: the call's time over the requests in it, so the shares add up to the time spent
generating) and started_at/ended_at (Unix times of the span, so a run's real wall time is the union of the spans).

Failures: a generation with ``error`` set (or an env that raises) ends that episode with termination_reason
"error" and ``Trajectory.error`` set; the other episodes go on. One exception: a conversation that has outgrown the
model's context after at least one agent turn (finish_reason "context_overflow") is not a failure of the run but of
the agent, like running out of turns: the episode ends truncated with termination_reason "context_limit" and reward
0, and counts as a result. A first prompt that does not fit at all is still an error (the setup is wrong).

Executors
---------
``executor="local"`` runs the envs in this process (they are fast: the model dominates). ``executor="ray"`` puts
the envs in Ray actors (``num_env_workers`` shards, episodes spread over them by slot) while generation stays in
the calling process; the code path is the same, only where env operations run differs. To run on a cluster::

    ray start --head                       # on the head node; `ray start --address=HEAD:6379` on the others
    python -c "import ray; ray.init(address='auto', runtime_env={'env_vars': {'HERO_GYM_DATA': '/data/hero_gym'}}); \\
               from hero_gym.rollout import run_episodes, EpisodeSpec; ..."
    # then run_episodes(..., executor="ray", num_env_workers=32)

Every node needs hero-gym installed and the benchmark data reachable (HERO_GYM_DATA). If Ray is not initialised
yet, run_episodes starts a local Ray instance and forwards HERO_GYM_DATA to its workers. Put the policy on a GPU
node (e.g. VLLMPolicy or an OpenAI-compatible server through OpenAIHTTPPolicy); the env actors need only CPUs.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hero_gym import chat
from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation, Trajectory, Turn

MAX_SAFE_TURNS = 10_000  # guards against an env that never ends an episode


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: which task, which attempt (for pass@k), the seed and the split (None: env default)."""

    task_index: int
    attempt: int = 0
    seed: int | None = None
    split: str | None = None

    def __post_init__(self):
        for name in ("task_index", "attempt"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"EpisodeSpec.{name} must be a non-negative int, got {v!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise ValueError(f"EpisodeSpec.seed must be an int or None, got {self.seed!r}")
        if self.split is not None and not isinstance(self.split, str):
            raise ValueError(f"EpisodeSpec.split must be a str or None, got {self.split!r}")


def request_seed(episode_seed: int | None, turn: int) -> int | None:
    """The sampling seed of turn `turn` of an episode (None when the episode has no seed)."""
    if episode_seed is None:
        return None
    return int(np.random.SeedSequence([int(episode_seed) % 2**63, int(turn)]).generate_state(1, dtype=np.uint64)[0]
               % 2**63)


# ----- env executors ------------------------------------------------------------------------------------------

def _make_env(env_id, split, env_kwargs):
    kwargs = dict(env_kwargs or {})
    if split is not None:
        kwargs["split"] = split
    if callable(env_id):
        return env_id(**kwargs)
    from hero_gym.registry import ENV_SPECS, make

    if env_id in ENV_SPECS:
        return make(env_id, **kwargs)
    import gymnasium as gym

    if env_id in gym.registry:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    raise ValueError(f"unknown environment {env_id!r}; registered: {', '.join(sorted(ENV_SPECS))}")


def _default_split(env_id, env_kwargs) -> str | None:
    if env_kwargs and env_kwargs.get("split") is not None:
        return env_kwargs["split"]
    from hero_gym.registry import ENV_SPECS

    spec = ENV_SPECS.get(env_id) if isinstance(env_id, str) else None
    return spec.default_split if spec is not None else None


def _check_env_id(env_id: str) -> None:
    from hero_gym.registry import ENV_SPECS
    import gymnasium as gym

    if env_id not in ENV_SPECS and env_id not in gym.registry:
        raise ValueError(f"unknown environment {env_id!r}; registered: {', '.join(sorted(ENV_SPECS))}")


class LocalEnvs:
    """Envs of one process. An env is bound to a slot while an episode runs and pooled per split afterwards."""

    def __init__(self, env_id, env_kwargs=None):
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.free: dict[Any, list] = {}
        self.bound: dict[int, tuple[Any, Any]] = {}

    def run(self, ops: list[tuple]) -> list[tuple]:
        """Apply ops in order: ("reset", slot, split, seed, task_index) | ("step", slot, action) | ("release", slot).
        Each result is ("ok", payload, seconds) or ("error", message, seconds); nothing raises."""
        out = []
        for op in ops:
            t0 = time.perf_counter()
            try:
                payload = getattr(self, "_" + op[0])(*op[1:])
                out.append(("ok", payload, time.perf_counter() - t0))
            except Exception as e:
                out.append(("error", f"{type(e).__name__}: {e}", time.perf_counter() - t0))
        return out

    def _reset(self, slot, split, seed, task_index):
        pool = self.free.setdefault(split, [])
        env = pool.pop() if pool else _make_env(self.env_id, split, self.env_kwargs)
        self.bound[slot] = (split, env)
        return env.reset(seed=seed, options={"task_index": task_index})

    def _step(self, slot, action):
        return self.bound[slot][1].step(action)

    def _release(self, slot):
        split, env = self.bound.pop(slot)
        self.free.setdefault(split, []).append(env)

    def close(self):
        for envs in self.free.values():
            for env in envs:
                env.close()
        for _, env in self.bound.values():
            env.close()
        self.free, self.bound = {}, {}


class RayEnvs:
    """The same operations as LocalEnvs, sharded over Ray actors (slot % num_workers picks the shard)."""

    def __init__(self, env_id, env_kwargs=None, num_workers: int = 2):
        try:
            import ray
        except ImportError:
            raise ImportError("executor='ray' needs Ray: pip install 'hero-gym[ray]' (or pip install ray)") from None
        if not ray.is_initialized():
            env_vars = {k: os.environ[k] for k in ("HERO_GYM_DATA", "HERO_GYM_CACHE") if k in os.environ}
            ray.init(runtime_env={"env_vars": env_vars} if env_vars else None, log_to_driver=False,
                     include_dashboard=False)
        self.ray = ray
        actor = ray.remote(num_cpus=0)(LocalEnvs)  # env work is light; do not reserve a core per shard
        self.shards = [actor.remote(env_id, env_kwargs) for _ in range(max(1, int(num_workers)))]

    def run(self, ops):
        by_shard: dict[int, list[int]] = {}
        for i, op in enumerate(ops):
            by_shard.setdefault(op[1] % len(self.shards), []).append(i)
        futures = {s: self.shards[s].run.remote([ops[i] for i in idx]) for s, idx in by_shard.items()}
        out: list = [None] * len(ops)
        for s, res in zip(futures, self.ray.get(list(futures.values()))):
            for i, r in zip(by_shard[s], res):
                out[i] = r
        return out

    def close(self):
        for a in self.shards:
            try:
                self.ray.kill(a)
            except Exception:
                pass


# ----- episodes -----------------------------------------------------------------------------------------------

class _Episode:
    """The state of one running episode (the trajectory being filled, its messages and its token ledger)."""

    def __init__(self, index: int, spec: EpisodeSpec, slot: int, env_name: str):
        self.index, self.spec, self.slot = index, spec, slot
        self.traj = Trajectory(env_id=env_name, task_index=int(spec.task_index), seed=spec.seed, split=spec.split)
        self.t0 = time.perf_counter()
        self.traj.started_at = time.time()
        self.done = False
        self.messages: list[dict] = []
        self.tools: list[dict] | None = None
        self.ledger: chat.ConversationTokens | None = None
        self.context_ids: list[int] | None = None
        self.gen: Generation | None = None

    def fail(self, message: str):
        t = self.traj
        t.termination_reason, t.error, t.reward, t.success = "error", message, 0.0, False
        self.done = True

    def out_of_context(self, message: str):
        t = self.traj
        t.termination_reason, t.truncated, t.terminated, t.reward, t.success = "context_limit", True, False, 0.0, False
        t.reward_info = {**(t.reward_info or {}), "context_limit": message}
        self.done = True

    def finish_timing(self):
        self.traj.wall_time_s = time.perf_counter() - self.t0
        self.traj.ended_at = time.time()


def _messages_after(info: dict, ep: _Episode, action: str | None, obs: str) -> list[dict]:
    """The env's conversation when it provides one; otherwise one built from actions and observations."""
    msgs = info.get("messages") if isinstance(info, dict) else None
    if isinstance(msgs, list) and msgs:
        return list(msgs)
    built = list(ep.messages)
    if action is not None:
        built.append({"role": "assistant", "content": action})
    built.append({"role": "user", "content": obs})
    return built


def run_episodes(
    env_id: str | Callable,
    policy,
    episodes: list[EpisodeSpec],
    *,
    env_kwargs: dict | None = None,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    executor: str = "local",
    batch_size: int | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
    num_env_workers: int | None = None,
    keep_results: bool = True,
    on_turn: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Run `episodes` of `env_id` with `policy`; return one Trajectory per spec, in the same order.

    Args:
        env_id: a registered id (hero_gym registry or Gymnasium), or a factory ``f(**env_kwargs) -> env``.
        policy: anything with ``generate(list[ChatRequest]) -> list[Generation]`` (see hero_gym.policies).
        episodes: the episodes to run (task index, attempt, seed, split).
        env_kwargs: passed to every env (e.g. ``{"max_turns": 10}``).
        max_new_tokens, temperature, top_p: sampling settings of every request.
        executor: "local" (envs in this process) or "ray" (envs in Ray actors; see the module docstring).
        batch_size: most episodes live at once, i.e. the largest batch sent to the policy (None: all).
        on_episode: called with each Trajectory as soon as its episode ends (e.g. to store records for resume).
        on_turn: called with an episode's Trajectory after each of its turns (e.g. to show turns and tokens as
            they happen; its last Turn is the new one).
        num_env_workers: Ray shards (default: min(8, live episodes)); ignored by the local executor.
        keep_results: False drops each Trajectory once `on_episode` has had it and returns an empty list, so a
            long evaluation that stores episodes as they end runs in bounded memory.
    """
    episodes = list(episodes)
    if not all(isinstance(e, EpisodeSpec) for e in episodes):
        raise TypeError("episodes must be a list of EpisodeSpec")
    if not hasattr(policy, "generate"):
        raise TypeError(f"policy must have a generate(requests) method, got {type(policy).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(env_id, str) and not callable(env_id):
        raise TypeError(f"env_id must be a registered id or an env factory, got {type(env_id).__name__}")
    if isinstance(env_id, str):
        _check_env_id(env_id)
    if not episodes:
        return []
    default_split = _default_split(env_id, env_kwargs)
    # The context and the trajectory name the split actually used, so scripted baselines can find the task.
    episodes_split = [e.split if e.split is not None else default_split for e in episodes]
    limit = batch_size or len(episodes)
    env_name = env_id if isinstance(env_id, str) else getattr(env_id, "__name__", type(env_id).__name__)
    if executor == "local":
        envs = LocalEnvs(env_id, env_kwargs)
    elif executor == "ray":
        envs = RayEnvs(env_id, env_kwargs, num_workers=num_env_workers or min(8, limit))
    else:
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        warnings.warn("the policy's tokenizer has no chat template: token ids are not tracked", RuntimeWarning)
        tokenizer = None
    model = getattr(policy, "model", None)

    results: list[Trajectory | None] = [None] * len(episodes)
    pending = deque(enumerate(episodes))
    live: list[_Episode] = []
    free_slots: list[int] = []
    next_slot = 0
    releases: list[tuple] = []

    def finish(ep: _Episode):
        ep.finish_timing()
        releases.append(("release", ep.slot))
        free_slots.append(ep.slot)
        if keep_results:
            results[ep.index] = ep.traj
        if on_episode is not None:
            on_episode(ep.traj)

    try:
        while pending or live:
            # start episodes up to the limit
            starting = []
            while pending and len(live) + len(starting) < limit:
                i, spec = pending.popleft()
                if spec.split != episodes_split[i]:
                    spec = EpisodeSpec(spec.task_index, spec.attempt, spec.seed, episodes_split[i])
                if free_slots:
                    slot = free_slots.pop()
                else:
                    slot, next_slot = next_slot, next_slot + 1
                starting.append(_Episode(i, spec, slot, env_name))
            ops = releases + [("reset", ep.slot, ep.spec.split, ep.spec.seed, ep.spec.task_index) for ep in starting]
            outcome = envs.run(ops)[len(releases):] if ops else []
            releases.clear()
            for ep, (status, payload, dt) in zip(starting, outcome):
                ep.traj.env_time_s += dt
                if status != "ok":
                    ep.fail(f"env reset failed: {payload}")
                    finish(ep)
                    continue
                _start(ep, payload, tokenizer, model)
                if ep.done:
                    finish(ep)
                else:
                    live.append(ep)
            if not live:
                continue
            # one batched generation for all live episodes
            requests = [_request(ep, env_name, max_new_tokens, temperature, top_p) for ep in live]
            t_gen = time.perf_counter()
            try:
                gens = list(policy.generate(requests))
                if len(gens) != len(requests):
                    raise RuntimeError(f"policy returned {len(gens)} generations for {len(requests)} requests")
            except Exception as e:  # a policy must not raise, but one that does must not end the run
                gens = [Generation(text="", error=f"policy.generate raised {type(e).__name__}: {e}",
                                   finish_reason="error") for _ in requests]
            share = (time.perf_counter() - t_gen) / len(requests)
            for ep in live:
                ep.traj.gen_time_s += share
            stepping = []
            for ep, gen in zip(live, gens):
                if not isinstance(gen, Generation):
                    gen = Generation(text="", error=f"policy returned {type(gen).__name__}, not Generation",
                                     finish_reason="error")
                ep.gen = gen
                if gen.error and gen.finish_reason == "context_overflow" and ep.traj.num_turns > 0:
                    ep.out_of_context(gen.error)
                elif gen.error:
                    ep.fail(f"generation failed: {gen.error}")
                elif not isinstance(gen.text, str):
                    ep.fail(f"generation text is {type(gen.text).__name__}, not str")
                else:
                    stepping.append(ep)
            outcome = envs.run([("step", ep.slot, ep.gen.text) for ep in stepping]) if stepping else []
            for ep, (status, payload, dt) in zip(stepping, outcome):
                ep.traj.env_time_s += dt
                if status != "ok":
                    ep.fail(f"env step failed: {payload}")
                else:
                    _after_step(ep, payload, tokenizer)
                    if on_turn is not None:
                        on_turn(ep.traj)
            still = []
            for ep in live:
                if ep.done:
                    finish(ep)
                else:
                    still.append(ep)
            live = still
        if releases:
            envs.run(releases)
    finally:
        envs.close()
    return results if keep_results else []  # type: ignore[return-value]


def _start(ep: _Episode, reset_out, tokenizer, model):
    obs, info = reset_out
    info = info or {}
    ep.traj.initial_observation = obs if isinstance(obs, str) else str(obs)
    ep.tools = info.get("tools")
    ep.traj.tools = ep.tools
    ep.messages = _messages_after(info, ep, None, ep.traj.initial_observation)
    ep.traj.messages = ep.messages
    if tokenizer is not None:
        try:
            ep.ledger = chat.ConversationTokens(tokenizer, ep.messages, ep.tools, model=model)
            ep.traj.prompt_token_ids = list(ep.ledger.prompt_token_ids)
        except Exception as e:
            ep.fail(f"token bookkeeping failed at reset: {type(e).__name__}: {e}")


def _request(ep: _Episode, env_name: str, max_new_tokens: int, temperature: float, top_p: float) -> ChatRequest:
    turn = ep.traj.num_turns
    prompt = list(ep.ledger.ids) if ep.ledger is not None else None
    return ChatRequest(
        messages=ep.messages, tools=ep.tools, prompt_token_ids=prompt, max_new_tokens=max_new_tokens,
        temperature=temperature, top_p=top_p, seed=request_seed(ep.spec.seed, turn),
        context={"env_id": env_name, "task_index": ep.spec.task_index, "split": ep.spec.split, "seed": ep.spec.seed,
                 "attempt": ep.spec.attempt, "turn": turn},
    )


def _after_step(ep: _Episode, step_out, tokenizer):
    obs, reward, terminated, truncated, info = step_out
    info = info or {}
    gen, traj = ep.gen, ep.traj
    obs = obs if isinstance(obs, str) else str(obs)
    done = bool(terminated or truncated)
    action_ids = list(gen.token_ids) if gen.token_ids is not None else []
    # Without ids (an HTTP server), the counts the backend reported (its `usage`).
    traj.tokens_in += (len(ep.ledger.ids) if ep.ledger is not None
                       else len(gen.prompt_token_ids) if gen.prompt_token_ids else gen.prompt_tokens or 0)
    traj.tokens_out += len(action_ids) if gen.token_ids is not None else gen.completion_tokens or 0
    traj.env_steps += 1
    messages = _messages_after(info, ep, gen.text, obs)
    obs_ids: list[int] = []
    if ep.ledger is not None:
        if gen.token_ids is None:
            warnings.warn("the policy returned no token ids; re-tokenizing its text", RuntimeWarning)
            action_ids = chat.encode(tokenizer, gen.text)
        try:
            obs_ids = ep.ledger.add_turn(action_ids, messages, done=done)
        except Exception as e:
            ep.fail(f"token bookkeeping failed: {type(e).__name__}: {e}")
    turn_info = {"finish_reason": gen.finish_reason}
    if info.get("invalid_reason") is not None:
        turn_info["invalid_reason"] = info["invalid_reason"]
    dropped = info.get("dropped_tool_calls")
    if isinstance(dropped, int) and dropped > 0:
        turn_info["dropped_tool_calls"] = dropped
        traj.dropped_tool_calls += dropped
    traj.turns.append(Turn(
        index=len(traj.turns), action=gen.text, observation=obs, reward=float(reward),
        action_token_ids=action_ids, action_logprobs=list(gen.logprobs) if gen.logprobs is not None else None,
        obs_token_ids=obs_ids, invalid=bool(info.get("invalid", False)), info=turn_info,
    ))
    ep.messages = messages
    traj.messages = messages
    traj.reward += float(reward)
    if ep.done:  # bookkeeping failure above
        return
    if done:
        traj.terminated, traj.truncated = bool(terminated), bool(truncated)
        traj.termination_reason = info.get("termination_reason") or ("truncated" if truncated else "terminated")
        traj.success = bool(info.get("success", False))
        traj.reward_info = dict(info.get("reward_info") or {})
        ep.done = True
    elif traj.num_turns >= MAX_SAFE_TURNS:
        ep.fail(f"episode exceeded {MAX_SAFE_TURNS} turns without ending")
