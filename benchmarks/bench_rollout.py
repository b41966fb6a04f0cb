"""Rollout speed: batched vs one-at-a-time episodes, the engine's overhead against raw `model.generate`, and the
share of wall time spent in the env.

    python -m hero_gym.benchmarks.bench_rollout --model tiny --episodes 16
    python -m hero_gym.benchmarks.bench_rollout --model smollm2 --episodes 8 --max-turns 3 --out results/bench_rollout.md

Three measurements on the same env and episodes:
1. run_episodes with all episodes in one batch vs batch_size=1 (episodes/s, generated tokens/s), and batched with
   HFPolicy's prefix KV cache (each turn runs only its new tokens);
2. single-turn greedy episodes through run_episodes vs `model.generate` on the same prompt ids in the same
   batches (both generate exactly the same number of tokens), i.e. what the engine adds on top of decoding;
3. env time as a fraction of wall time in (1).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch


def _rollout(env_id, policy, specs, **kw):
    from hero_gym.rollout import run_episodes

    t0 = time.perf_counter()
    trajs = run_episodes(env_id, policy, specs, **kw)
    wall = time.perf_counter() - t0
    errors = [t.error for t in trajs if t.error]
    if errors:
        raise SystemExit(f"{len(errors)} episodes failed, e.g.: {errors[0]}")
    return trajs, wall


def _summary(trajs, wall):
    out = sum(t.tokens_out for t in trajs)
    env = sum(t.env_time_s for t in trajs)
    turns = sum(t.num_turns for t in trajs)
    return {"episodes/s": len(trajs) / wall, "tokens/s": out / wall, "wall_s": wall, "turns": turns,
            "tokens_out": out, "env_share": env / wall}


def _raw_generate(policy, prompts, max_new_tokens, batch):
    """`model.generate` (greedy, no early stop) over the same prompt ids, left-padded, in the same batches."""
    model, pad = policy.model, policy.pad_id
    total, t0 = 0, time.perf_counter()
    for s in range(0, len(prompts), batch):
        chunk = prompts[s:s + batch]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(chunk):
            ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 min_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
        total += (out.shape[1] - width) * len(chunk)
    return total, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny", help="tiny | smollm2 | a model folder")
    ap.add_argument("--env", default="hero_gym/WebShop-v0")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--prefix-cache-mb", type=float, default=256,
                    help="also run the batched rollout with HFPolicy(prefix_cache_mb=...) (0: skip)")
    ap.add_argument("--skip-raw", action="store_true", help="skip the comparison with model.generate")
    ap.add_argument("--out", default=None, help="also write the markdown report here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hero_gym import chat
    from hero_gym.policies.hf import HFPolicy
    from hero_gym.rollout import EpisodeSpec

    policy = HFPolicy(args.model, batch_size=args.episodes)
    specs = [EpisodeSpec(task_index=i, seed=1000 + i) for i in range(args.episodes)]
    env_kwargs = {"max_turns": args.max_turns}
    kw = dict(env_kwargs=env_kwargs, max_new_tokens=args.max_new_tokens, temperature=1.0)
    load_before = os.getloadavg()[0]
    _rollout(args.env, policy, specs[:2], **kw)  # warm-up: env data, kernels

    batched = _summary(*_rollout(args.env, policy, specs, **kw))
    print(f"batched: {batched}", file=sys.stderr)
    single = _summary(*_rollout(args.env, policy, specs, batch_size=1, **kw))
    print(f"one at a time: {single}", file=sys.stderr)
    cached = None
    if args.prefix_cache_mb > 0:
        cached_policy = HFPolicy(policy.model, policy.tokenizer, batch_size=args.episodes,
                                 prefix_cache_mb=args.prefix_cache_mb)
        cached_trajs, cached_wall = _rollout(args.env, cached_policy, specs, **kw)
        cached = _summary(cached_trajs, cached_wall)
        reused = cached_policy.prefix_cache.reused_tokens
        print(f"batched + prefix cache: {cached}", file=sys.stderr)

    # engine vs raw generate: one greedy turn per episode, no early stop on either side
    stop_ids, policy.stop_ids = policy.stop_ids, set()
    try:
        one_turn, t_engine = _rollout(args.env, policy, specs, env_kwargs={"max_turns": 1},
                                      max_new_tokens=args.max_new_tokens, temperature=0.0)
        prompts = [t.prompt_token_ids for t in one_turn]
        raw_tokens, t_raw = (0, float("nan")) if args.skip_raw else \
            _raw_generate(policy, prompts, args.max_new_tokens, args.episodes)
    finally:
        policy.stop_ids = stop_ids
    engine_tokens = sum(t.tokens_out for t in one_turn)
    eng_env = sum(t.env_time_s for t in one_turn)
    prompt_len = sum(map(len, prompts)) / len(prompts)
    same = None
    if raw_tokens == engine_tokens:  # compare greedy outputs too (a check that both decode the same thing)
        with torch.inference_mode():
            ref = policy.model.generate(input_ids=torch.tensor([prompts[0]]), max_new_tokens=args.max_new_tokens,
                                        min_new_tokens=args.max_new_tokens, do_sample=False,
                                        pad_token_id=policy.pad_id)[0, len(prompts[0]):].tolist()
        same = ref == one_turn[0].turns[0].action_token_ids

    cmd = "python -m hero_gym.benchmarks.bench_rollout " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Rollout benchmark: {args.model} on {args.env}",
        "",
        f"Command: `OMP_NUM_THREADS={args.threads} {cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch "
        f"thread(s); {args.episodes} episodes, max_turns {args.max_turns}, max_new_tokens {args.max_new_tokens}, "
        f"mean first prompt {prompt_len:.0f} tokens ({type(policy.tokenizer).__name__}, vocab {len(policy.tokenizer)}). "
        f"Load average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after: other processes share "
        "the cores, so absolute speeds are low; the ratios are the point.",
        "",
        "| rollout | episodes/s | generated tokens/s | wall s | turns | env share of wall |",
        "|---|---|---|---|---|---|",
    ]
    rows = [("batched (all live episodes in one generate call)", batched), ("one episode at a time", single)]
    if cached is not None:
        rows.append((f"batched + prefix KV cache ({args.prefix_cache_mb:g} MB; {reused} prompt tokens reused)", cached))
    for name, r in rows:
        lines.append(f"| {name} | {r['episodes/s']:.2f} | {r['tokens/s']:.1f} | {r['wall_s']:.2f} | {r['turns']} | "
                     f"{100 * r['env_share']:.2f}% |")
    lines += [
        "",
        f"Batched / one-at-a-time speed-up: **{batched['tokens/s'] / single['tokens/s']:.2f}x** tokens/s."
        + (f" Prefix KV cache / batched: **{batched['wall_s'] / cached['wall_s']:.2f}x**." if cached else ""),
        "",
        "Engine overhead against raw `model.generate` (one greedy turn per episode, same prompt ids, same batches, "
        f"{args.max_new_tokens} tokens each, no early stop):",
        "",
        "| path | generated tokens | s | tokens/s |",
        "|---|---|---|---|",
        f"| run_episodes (env reset+step, chat bookkeeping, own decoding loop) | {engine_tokens} | {t_engine:.2f} | "
        f"{engine_tokens / t_engine:.1f} |",
        f"| model.generate | {raw_tokens} | {t_raw:.2f} | {raw_tokens / t_raw:.1f} |",
        "",
        f"Engine / raw time: **{t_engine / t_raw:.2f}x** (env time inside the engine run: {eng_env:.3f} s); "
        f"greedy tokens identical to model.generate on episode 0: {same}.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "a" if os.path.exists(args.out) else "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
