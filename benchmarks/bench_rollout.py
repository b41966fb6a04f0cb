"""Rollout speed: the harness's own overhead against the bare decoder, batched vs one-at-a-time episodes, and the
prefix KV cache.

    python -m hero_gym.benchmarks.bench_rollout --model tiny --episodes 32 --max-turns 1
    python -m hero_gym.benchmarks.bench_rollout --model smollm2 --episodes 8 --max-turns 3 --out results/bench_rollout.md

Overhead (the headline): the same decoder on both sides. A harness run is ``run_episodes`` with a policy wrapper
that records every batch of requests it sends and times ``policy.generate``; the bare run replays exactly those
batches (same prompt ids, same seeds, same sizes) straight into ``policy.generate``. Both produce the same tokens
(checked). After a warm-up of each side, the two run in alternating order (AB, BA, AB, ...) for `--repeats` pairs;
each pair gives ``harness / bare - 1`` in wall and in CPU time, and the report gives the median and range over
pairs. Inside each harness run, the time outside ``policy.generate`` is split into env time (reset/step) and the
harness's own (token bookkeeping, requests, trajectories), a second estimate that needs no pairing.

Batching and the prefix cache (``--compare-batching``): run_episodes with all episodes in one batch, one at a time,
and batched with ``HFPolicy(prefix_cache_mb=...)``, also alternated over the repeats.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch


class _Recorder:
    """Forwards to a policy (so run_episodes sees its tokenizer and model), recording and timing each batch."""

    def __init__(self, policy):
        self.policy, self.batches, self.gen_wall, self.gen_cpu = policy, [], 0.0, 0.0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, requests):
        self.batches.append(list(requests))
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.policy.generate(requests)
        self.gen_wall += time.perf_counter() - t0
        self.gen_cpu += time.process_time() - c0
        return out


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _harness(env_id, policy, specs, kw):
    from hero_gym.rollout import run_episodes

    from hero_gym import chat

    chat.clear_encode_cache(policy.tokenizer)  # repeats run the same episodes: time a cold tokenizer cache
    rec = _Recorder(policy)
    trajs, wall, cpu = _timed(lambda: run_episodes(env_id, rec, specs, **kw))
    errors = [t.error for t in trajs if t.error]
    if errors:
        raise SystemExit(f"{len(errors)} episodes failed, e.g.: {errors[0]}")
    env = sum(t.env_time_s for t in trajs)
    return {"wall": wall, "cpu": cpu, "gen_wall": rec.gen_wall, "gen_cpu": rec.gen_cpu, "env": env,
            "batches": rec.batches, "trajs": trajs}


def _bare(policy, batches):
    def replay():
        return [policy.generate(b) for b in batches]
    outs, wall, cpu = _timed(replay)
    return {"wall": wall, "cpu": cpu, "outs": outs}


def _rotated(fns: dict, repeats: int) -> dict:
    """Run every fn once per repeat, rotating which goes first, so drifts in machine load hit all of them alike."""
    names = list(fns)
    res = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            res[n].append(fns[n]())
    return res


def _med(xs):
    return f"{100 * statistics.median(xs):.2f}% [{100 * min(xs):.2f}, {100 * max(xs):.2f}]"


def overhead(env_id, policy, specs, kw, repeats):
    """Paired harness-vs-bare runs; returns (markdown lines, figures)."""
    warm = _harness(env_id, policy, specs, kw)  # warm-up: env data, kernels, allocator; also fixes the batches
    _bare(policy, warm["batches"])
    batches = warm["batches"]
    pairs = _rotated({"harness": lambda: _harness(env_id, policy, specs, kw),
                      "bare": lambda: _bare(policy, batches)}, repeats)
    # Same decoder, same requests: the bare replay must produce the harness's tokens.
    harness_tokens = sorted(tuple(t.turns[0].action_token_ids) for t in pairs["harness"][0]["trajs"])
    bare_tokens = sorted(tuple(g.token_ids) for g in pairs["bare"][0]["outs"][0])
    same = harness_tokens == bare_tokens
    h, b = pairs["harness"], pairs["bare"]
    wall_ratio = [x["wall"] / y["wall"] - 1 for x, y in zip(h, b)]
    cpu_ratio = [x["cpu"] / y["cpu"] - 1 for x, y in zip(h, b)]
    own = [(x["wall"] - x["gen_wall"] - x["env"]) / x["gen_wall"] for x in h]
    gen_vs_bare = [x["gen_wall"] / y["wall"] - 1 for x, y in zip(h, b)]
    env = [x["env"] / x["gen_wall"] for x in h]
    turns = sum(t.num_turns for t in h[0]["trajs"])
    own_ms = statistics.median((x["wall"] - x["gen_wall"] - x["env"]) * 1e3 / turns for x in h)
    gen_ms = statistics.median(x["gen_wall"] * 1e3 / turns for x in h)
    lines = [
        "| measure (median over pairs [min, max]) | value |",
        "|---|---|",
        f"| harness / bare - 1, wall time | {_med(wall_ratio)} |",
        f"| harness / bare - 1, CPU time | {_med(cpu_ratio)} |",
        f"| generate inside the harness / bare replay - 1, wall | {_med(gen_vs_bare)} |",
        f"| inside the harness run: own time / generate time | {_med(own)} |",
        f"| inside the harness run: env time / generate time | {_med(env)} |",
        f"| own time per episode-turn | {own_ms:.3f} ms (generate: {gen_ms:.2f} ms) |",
        f"| bare replay: generate calls, requests | {len(batches)}, {sum(map(len, batches))} |",
        "",
        f"Episode-turns per run: {turns}; bare replay produced the harness's tokens: {same}.",
    ]
    return lines, {"wall": statistics.median(wall_ratio), "own": statistics.median(own), "same": same}


def batching(env_id, policy, specs, kw, repeats, prefix_cache_mb):
    from hero_gym.policies.hf import HFPolicy

    one = lambda: _harness(env_id, policy, specs, {**kw, "batch_size": 1})  # noqa: E731
    fns = {"batched (all live episodes in one generate call)": lambda: _harness(env_id, policy, specs, kw),
           "one episode at a time": one}
    if prefix_cache_mb > 0:
        cached = HFPolicy(policy.model, policy.tokenizer, batch_size=policy.batch_size, prefix_cache_mb=prefix_cache_mb)
        fns[f"batched + prefix KV cache ({prefix_cache_mb:g} MB)"] = lambda: _harness(env_id, cached, specs, kw)
    for f in fns.values():
        f()  # warm-up
    res = _rotated(fns, repeats)
    lines = ["| rollout | wall s (median) | generated tokens/s | CPU s | env share of wall |", "|---|---|---|---|---|"]
    walls = {}
    for name, runs in res.items():
        wall = statistics.median(r["wall"] for r in runs)
        walls[name] = wall
        out = sum(t.tokens_out for t in runs[0]["trajs"])
        lines.append(f"| {name} | {wall:.2f} | {out / wall:.1f} | {statistics.median(r['cpu'] for r in runs):.2f} | "
                     f"{100 * statistics.median(r['env'] / r['wall'] for r in runs):.2f}% |")
    names = list(walls)
    lines += ["", f"Batched / one-at-a-time: **{walls[names[1]] / walls[names[0]]:.2f}x**."
              + (f" Prefix cache / batched: **{walls[names[0]] / walls[names[2]]:.2f}x**." if len(names) > 2 else "")]
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny", help="tiny | smollm2 | a model folder")
    ap.add_argument("--env", default="hero_gym/WebShop-v0")
    ap.add_argument("--episodes", type=int, default=32, help="episodes per run, all in one batch")
    ap.add_argument("--max-turns", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5, help="paired repeats (alternating order)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--compare-batching", action="store_true",
                    help="also time batched vs one-at-a-time vs the prefix KV cache")
    ap.add_argument("--prefix-cache-mb", type=float, default=256)
    ap.add_argument("--out", default=None, help="also append the markdown report here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hero_gym.policies.hf import HFPolicy
    from hero_gym.rollout import EpisodeSpec

    policy = HFPolicy(args.model, batch_size=args.episodes)
    specs = [EpisodeSpec(task_index=i, seed=1000 + i) for i in range(args.episodes)]
    kw = dict(env_kwargs={"max_turns": args.max_turns}, max_new_tokens=args.max_new_tokens,
              temperature=args.temperature)
    load_before = os.getloadavg()[0]
    lines, fig = overhead(args.env, policy, specs, kw, args.repeats)
    print(f"overhead: {fig}", file=sys.stderr)
    if args.compare_batching:
        lines += ["", "Batching and the prefix cache (same episodes):", ""]
        lines += batching(args.env, policy, specs, kw, args.repeats, args.prefix_cache_mb)

    cmd = "python -m hero_gym.benchmarks.bench_rollout " + " ".join(argv if argv is not None else sys.argv[1:])
    head = [
        f"## {args.model} on {args.env}: {args.episodes} episodes, max_turns {args.max_turns}, "
        f"{args.max_new_tokens} new tokens, temperature {args.temperature:g}",
        "",
        f"Command: `OMP_NUM_THREADS={args.threads} {cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch "
        f"thread(s); {args.repeats} paired repeats after a warm-up. Load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after.",
        "",
    ]
    report = "\n".join(head + lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
