"""Hostile actions against every env: exceptions, worst step time, state leaks and replay at another stack depth.

Actions come from a seeded generator (``random.Random``, seeds of their own), mixing plausible tool calls with the
inputs an adversary would try: deep JSON nesting, 5,000-digit integers, OpenAI-shaped messages and Hermes blocks
holding several calls, chained products and powers for tau's ``calculate``, bracket soup for WebShop, texts at
and over the length limit, lone surrogates, NULs and right-to-left marks.

Per env it reports the actions stepped, episodes, invalid actions, exceptions (must be 0), the median and worst
step CPU time (this thread's; wall time on a shared machine mostly measures the scheduler) with the worst action,
the worst wall time, a leak check (tau: the shared base tables are byte-identical after the
run; every env: the first observation of a fixed reset is unchanged) and replay mismatches: every `replay_every`-th
episode is replayed from its seed with the caller's stack 137 frames deeper, and its observations must be equal.

Run: ``HERO_GYM_DATA=/work/shared/data OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.fuzz_envs --actions 10000``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass

ENV_IDS = ("hero_gym/TauRetail-v0", "hero_gym/TauAirline-v0", "hero_gym/Tau2Retail-v0", "hero_gym/Tau2Airline-v0",
           "hero_gym/WebShop-v0")
_ODD = ["\ud800", "\x00", "\u202e", "🙂", "中文", "\\", '"', "\n", "{", "}", "[", "]", "<tool_call>", "</tool_call>"]


def _odd_text(rng: random.Random, n: int) -> str:
    pieces = [rng.choice(_ODD) if rng.random() < 0.3 else chr(rng.randint(32, 126)) for _ in range(n)]
    return "".join(pieces)


def _nested(rng: random.Random, levels: int) -> str:
    opens = [rng.choice(['[', '{"k":']) for _ in range(levels)]
    return "".join(opens) + "1" + "".join("]" if o == "[" else "}" for o in reversed(opens))


def _calc_expression(rng: random.Random) -> str:
    term = rng.choice(["10**30000", "7**35000", "9" * 4000, "2**99999", "(10**400*10**400/10**700)", "1.5"])
    op = rng.choice(["*", "+", "//", "/", "**"])
    return op.join([term] * rng.choice([2, 12, 120, 130, 401, 3000]))


def tau_actions(rng: random.Random, schemas: list[dict], pools: dict) -> str:
    """One hostile or plausible tau action."""
    names = [s["function"]["name"] for s in schemas]
    kind = rng.randrange(12)

    def call(name=None, args=None):
        name = name or rng.choice(names)
        if args is None:
            props = next(s for s in schemas if s["function"]["name"] == name)["function"]["parameters"]
            args = {k: rng.choice(pools[k]) if pools.get(k) else _odd_text(rng, 8) for k in props.get("properties", {})}
        return {"name": name, "arguments": args}

    if kind == 0:
        return _odd_text(rng, rng.randint(0, 300))
    if kind == 1:
        return json.dumps(call())
    if kind == 2:
        return "Sure.\n" + "".join(f"<tool_call>{json.dumps(call())}</tool_call>" for _ in range(rng.randint(1, 4)))
    if kind == 3:
        calls = [{"id": f"c{i}", "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                 for i, c in enumerate(call() for _ in range(rng.randint(1, 4)))]
        return json.dumps({"role": "assistant", "content": rng.choice([None, "", "Checking."]), "tool_calls": calls})
    if kind == 4:
        body = _nested(rng, rng.choice([101, 600, 3000, 6000]))
        return rng.choice(['{"name": "think", "arguments": {"thought": %s}}' % body, "<tool_call>%s</tool_call>" % body,
                           '{"name": "think", "arguments": %s}' % json.dumps(body), body])
    if kind == 5:
        return '{"name": "calculate", "arguments": {"expression": %s}}' % ("9" * rng.choice([4301, 5000, 15000]))
    if kind == 6:
        return json.dumps(call("calculate", {"expression": _calc_expression(rng)}))
    if kind == 7:
        n = rng.choice([19_999, 20_000, 20_001, 50_000])
        return (json.dumps(call("think", {"thought": "x" * n})) if rng.random() < 0.5 else "y" * n)
    if kind == 8:
        text = json.dumps(call())
        return text[: rng.randint(0, len(text))]
    if kind == 9:
        return rng.choice(['{"tool_calls": "abc"}', '{"tool_calls": [null]}', '{"tool_calls": [{"function": "x"}]}',
                           '{"name": "think", "arguments": ' + "[" * 101 + '"' + '\\"' * 9000,
                           '{"name": null}', '{"name": "think", "arguments": [1]}', "```json\n%s\n```" % json.dumps(call())])
    if kind == 10:
        return json.dumps(call(args={_odd_text(rng, 4): _odd_text(rng, 6)}))
    return rng.choice(["###STOP###", "bye", "transfer me", ""])


def webshop_actions(rng: random.Random, valid: list[str]) -> str:
    """One hostile or plausible WebShop action."""
    kind = rng.randrange(8)
    if kind <= 2 and valid:
        return rng.choice(valid)
    if kind == 3:
        return f"search[{_odd_text(rng, rng.randint(0, 60))}]"
    if kind == 4:
        return f"click[{_odd_text(rng, rng.randint(0, 30))}]"
    if kind == 5:
        return rng.choice(["]", "[", "search[", "click[", "]["]) * rng.choice([10, 1000, 10_000])
    if kind == 6:
        return _odd_text(rng, rng.randint(0, 300))
    return json.dumps({"name": "search", "arguments": {"query": _odd_text(rng, 10)}})


@dataclass
class EnvFuzz:
    env: str
    actions: int
    episodes: int
    invalid: int
    exceptions: int
    median_step_ms: float  # CPU time of this thread
    worst_step_ms: float  # CPU time of this thread
    worst_action: str
    worst_wall_ms: float
    leak: bool
    replays: int
    replay_mismatches: int


def _at_depth(depth: int, fn):
    return fn() if depth == 0 else _at_depth(depth - 1, fn)


def fuzz_env(env_id: str, actions: int, seed: int, *, max_turns: int = 8, replay_every: int = 20) -> EnvFuzz:
    from hero_gym.registry import make

    env = make(env_id, max_turns=max_turns).unwrapped  # the env itself: wrappers would only add their own checks
    tau = env_id.startswith("hero_gym/Tau")
    if tau:
        from hero_gym.envs.tau.baselines import _value_pools
        from hero_gym.envs.tau.db import base_tables

        pools = _value_pools(env.domain, env.version)

        def fingerprint():
            return {n: json.dumps(t.records, sort_keys=True) for n, t in base_tables(env.version, env.domain).items()}

        before = fingerprint()
    first_obs = env.reset(seed=seed, options={"task_index": 0})[0]
    rng = random.Random(seed)
    times: list[float] = []
    worst, worst_action, worst_wall = 0.0, "", 0.0
    invalid = exceptions = episodes = replays = mismatches = 0
    while len(times) < actions:
        ep_seed = rng.randrange(2**31)
        obs, info = env.reset(seed=ep_seed)
        task = info["task_index"]
        episodes += 1
        trace: list[tuple[str, str]] = []
        done = False
        while not done and len(times) < actions:
            action = (tau_actions(rng, env.tool_schemas, pools) if tau
                      else webshop_actions(rng, info.get("valid_actions") or []))
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                obs, r, term, trunc, info = env.step(action)
            except Exception as e:  # noqa: BLE001 -- counted: the figure must be 0
                exceptions += 1
                print(f"{env_id}: {type(e).__name__}: {e} on {ascii(action[:120])}")
                break
            dt = time.thread_time() - c0
            worst_wall = max(worst_wall, time.perf_counter() - t0)
            times.append(dt)
            if dt > worst:
                worst, worst_action = dt, action
            invalid += bool(info.get("invalid"))
            trace.append((action, obs))
            done = term or trunc
        if trace and episodes % replay_every == 0:
            replays += 1
            assert env.reset(seed=ep_seed)[1]["task_index"] == task  # same seed, same draw (and same user seed)
            again = [_at_depth(137, lambda a=a: env.step(a)[0]) for a, _ in trace]
            mismatches += again != [o for _, o in trace]
    leak = env.reset(seed=seed, options={"task_index": 0})[0] != first_obs
    if tau:
        leak = leak or fingerprint() != before
    env.close()
    shown = ascii(worst_action[:60]) + (f"... ({len(worst_action)} chars)" if len(worst_action) > 60 else "")
    shown = shown.replace("|", "\\|")
    return EnvFuzz(env=env_id, actions=len(times), episodes=episodes, invalid=invalid, exceptions=exceptions,
                   median_step_ms=statistics.median(times) * 1e3, worst_step_ms=worst * 1e3, worst_action=shown,
                   worst_wall_ms=worst_wall * 1e3,
                   leak=leak, replays=replays, replay_mismatches=mismatches)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--actions", type=int, default=10_000, help="actions per env")
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--envs", default=",".join(ENV_IDS))
    args = ap.parse_args(argv)
    rows = []
    for i, env_id in enumerate(args.envs.split(",")):
        t0 = time.perf_counter()
        r = fuzz_env(env_id, args.actions, args.seed + i)
        rows.append(r)
        print(json.dumps({**vars(r), "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)
    print("\n| env | actions | episodes | invalid | exceptions | median step CPU ms | worst step CPU ms | worst action |"
          " worst step wall ms | leak | replays (mismatches) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.env} | {r.actions} | {r.episodes} | {r.invalid} | {r.exceptions} | {r.median_step_ms:.3f} | "
              f"{r.worst_step_ms:.1f} | {r.worst_action} | {r.worst_wall_ms:.1f} | {'LEAK' if r.leak else 'none'} | "
              f"{r.replays} ({r.replay_mismatches}) |")


if __name__ == "__main__":
    main()
