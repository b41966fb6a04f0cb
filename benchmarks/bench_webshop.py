"""Speed of the WebShop env: step latency by action type, and every stage of a cold and a warm env start.

Episode pattern per goal (as the upstream measurement in shared/docs/webshop.md §4): reset → search the
instruction → Next > → < Prev → click the goal product if listed (else the first) → up to 2 option clicks →
Description → < Prev → Features → < Prev → Buy Now. Each step is timed around ``env.step`` (parsing, transition,
search, rendering, action list, messages, reward). Reference: the original env takes a median 20 ms per step
(search ≈ 60-80 ms) on a 2-core machine.

Starts, each in a fresh process: a cold start first deletes the whole cache folder (prepared catalogue, product
blobs, search index, goal tables), so every stage really runs; warm starts (``--warm-repeats`` of them) then find
everything cached. Stages: imports, catalogue (prepare from the raw file / reload), search index (build / reload,
plus the shop around it), synthetic goal table (build / reload), the rest of ``WebShopEnv.__init__``, first reset.

Two catalogues: the bundled 1k one, and a synthetic one of ``--large-n`` products made by
:mod:`hero_gym.envs.webshop.synthetic` (written once under ``--workdir``, Zipf words over a 300,000-word
vocabulary).

Run: ``HERO_GYM_DATA=/work/shared/data OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.bench_webshop
[--episodes 200] [--large-n 100000] [--workdir /tmp/webshop-bench] [--warm-repeats 3] [--no-starts]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hero_gym.envs.webshop.env import WebShopEnv

KINDS = ("reset", "search", "next", "prev_results", "click_item", "option", "sub_page", "prev_item", "buy")


def _episode(env: WebShopEnv, task: int, times: dict[str, list[float]]) -> None:
    def step(kind: str, action: str):
        t = time.perf_counter()
        out = env.step(action)
        times[kind].append(time.perf_counter() - t)
        return out

    t = time.perf_counter()
    _, info = env.reset(options={"task_index": task})
    times["reset"].append(time.perf_counter() - t)
    goal = env.goal
    _, _, _, _, info = step("search", f"search[{info['instruction'].lower().replace('[', ' ').replace(']', ' ')}]")
    step("next", "click[next >]")
    _, _, _, _, info = step("prev_results", "click[< prev]")
    by_asin = env.shop.catalogue.by_asin
    items = [f"click[{c}]" for c in info["available_actions"]["clickables"] if c.upper() in by_asin]
    target = f"click[{goal['asin'].lower()}]"
    if target not in info["valid_actions"]:
        if not items:
            return
        target = items[0]
    _, _, _, _, info = step("click_item", target)
    if info["page"] != "item":
        raise RuntimeError(f"benchmark episode {task} did not reach an item page: {info.get('invalid_reason')}")
    opts = [v for vs in by_asin[target[6:-1].upper()]["options"].values() for v in vs]
    for v in opts[:2]:
        step("option", f"click[{v}]")
    for sub in ("description", "features"):
        step("sub_page", f"click[{sub}]")
        step("prev_item", "click[< prev]")
    *_, info = step("buy", "click[buy now]")
    if info["termination_reason"] != "purchase":
        raise RuntimeError(f"benchmark episode {task} did not end with a purchase: {info.get('invalid_reason')}")


def measure_steps(env: WebShopEnv, episodes: int) -> dict[str, dict]:
    """Per action kind: n, median and p90 latency in ms over `episodes` scripted episodes."""
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for i in range(min(episodes, env.num_tasks)):
        _episode(env, i, times)
    out = {}
    for k, v in times.items():
        if v:
            v = sorted(v)
            out[k] = {"n": len(v), "median_ms": 1e3 * statistics.median(v), "p90_ms": 1e3 * v[int(0.9 * (len(v) - 1))]}
    steps = sorted(x for k, v in times.items() if k != "reset" for x in v)
    out["all steps"] = {"n": len(steps), "median_ms": 1e3 * statistics.median(steps),
                        "p90_ms": 1e3 * steps[int(0.9 * (len(steps) - 1))]}
    return out


_START = r"""
import json, resource, sys, time


def clock():
    # wall, and CPU of this process plus its finished children (the two-core builds fork a worker)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


out = {}
start = last = clock()


def stage(name):
    global last
    now = clock()
    out[name] = [now[0] - last[0], now[1] - last[1]]
    last = now


from hero_gym.envs.webshop import env as env_mod, goals, reward, search  # noqa: E401,F401
from hero_gym.envs.webshop.catalogue import load_catalogue
stage("imports")
args = json.loads(sys.argv[1])
setting, paths = args["setting"], args["paths"]
after_imports = last
cat = load_catalogue(setting, **paths)
stage("catalogue")
env_mod.get_shop(setting, 0, **paths)  # the search index, and the shop around it
stage("index")
goal_list = env_mod.get_goals("synthetic", setting, 0, **paths)
stage("goals")
env = env_mod.WebShopEnv(setting=setting, **paths)  # the rest (the stages above are memoised in-process)
stage("env_rest")
out["env_total"] = [last[0] - after_imports[0], last[1] - after_imports[1]]
env.reset(options={"task_index": 0})
stage("first_reset")
out["products"], out["n_goals"] = len(cat), len(goal_list)
print(json.dumps(out))
"""
STAGES = ("imports", "catalogue", "index", "goals", "env_rest", "env_total", "first_reset")


def _start(setting: str, paths: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _START, json.dumps({"setting": setting, "paths": paths})],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_starts(setting: str, cache_dir: Path, warm_repeats: int = 3, **paths) -> dict:
    """One cold start (after deleting ``cache_dir`` entirely) and ``warm_repeats`` warm ones, fresh processes."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    paths = {**paths, "cache_dir": str(cache_dir)}
    cold = _start(setting, paths)
    warm = [_start(setting, paths) for _ in range(warm_repeats)]
    return {"cold": cold, "warm": warm}


def _starts_lines(title: str, res: dict) -> list[str]:
    cold, warm = res["cold"], res["warm"]
    names = {"imports": "imports (Python modules)", "catalogue": "catalogue: prepare from raw / reload cache",
             "index": "search index: build / reload (+ shop)", "goals": "synthetic goal table: build / reload",
             "env_rest": "rest of WebShopEnv()", "env_total": "**env construction total** (after imports)",
             "first_reset": "first reset"}
    lines = [f"### {title}: cold and warm starts (fresh process each)", "",
             f"{cold['products']:,} products, {cold['n_goals']:,} synthetic goals. Wall and CPU seconds (CPU: this "
             f"process and its worker); warm: median of {len(warm)} (min-max).", "",
             "| stage | cold wall | cold CPU | warm wall | warm CPU |", "|---|---|---|---|---|"]
    for k in STAGES:
        w, c = [x[k][0] for x in warm], [x[k][1] for x in warm]
        lines.append(f"| {names[k]} | {cold[k][0]:.2f} | {cold[k][1]:.2f} | {statistics.median(w):.2f} "
                     f"({min(w):.2f}-{max(w):.2f}) | {statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) |")
    return lines + [""]


def _table(title: str, steps: dict) -> list[str]:
    lines = [f"### {title}", "", "| step | n | median ms | p90 ms |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['median_ms']:.3f} | {v['p90_ms']:.3f} |" for k, v in steps.items()]
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--large-n", type=int, default=100_000, help="products in the synthetic catalogue (0: skip)")
    ap.add_argument("--workdir", default="/tmp/webshop-bench")
    ap.add_argument("--warm-repeats", type=int, default=3)
    ap.add_argument("--text-scale", type=float, default=1.0,
                    help="shorten the synthetic products' texts (e.g. 0.1: full-scale counts, quicker to build)")
    ap.add_argument("--skip-1k", action="store_true", help="only the synthetic catalogue")
    ap.add_argument("--no-steps", action="store_true", help="skip the step-latency tables")
    ap.add_argument("--no-starts", action="store_true", help="skip the (slow) cold/warm start measurements")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"Command: `{' '.join(['python -m hero_gym.benchmarks.bench_webshop'] + (argv or sys.argv[1:]))}`", ""]

    if not args.no_starts and not args.skip_1k:
        lines += _starts_lines("1k catalogue", measure_starts("1k", work / "cache-1k", args.warm_repeats))
    if not args.no_steps and not args.skip_1k:
        env = WebShopEnv(max_turns=100, cache_dir=str(work / "cache-1k"))
        lines += _table("1k catalogue, synthetic goals (test split)", measure_steps(env, args.episodes))

    if args.large_n:
        from hero_gym.envs.webshop.synthetic import (
            GENERATOR_VERSION, write_synthetic_attributes, write_synthetic_catalogue,
        )

        tag = f"{args.large_n}_g{GENERATOR_VERSION}" + (f"_t{args.text_scale:g}" if args.text_scale != 1 else "")
        items, attrs = work / f"items_{tag}.json", work / f"attrs_{tag}.json"
        if not items.exists() or not attrs.exists():
            t = time.perf_counter()
            write_synthetic_catalogue(items, args.large_n, text_scale=args.text_scale)
            write_synthetic_attributes(attrs, args.large_n)
            lines += [f"Synthetic catalogue of {args.large_n} products written in {time.perf_counter() - t:.1f} s "
                      f"({items.stat().st_size / 1e6:.0f} MB).", ""]
        paths = {"items_path": str(items), "attrs_path": str(attrs)}
        if not args.no_starts:
            starts = measure_starts("full", work / "cache-large", args.warm_repeats, **paths)
            scale = f", texts scaled by {args.text_scale:g}" if args.text_scale != 1 else ""
            lines += _starts_lines(f"synthetic {args.large_n:,}-product catalogue "
                                   f"({items.stat().st_size / 1e9:.2f} GB raw{scale})", starts)
        if not args.no_steps:
            big = WebShopEnv(setting="full", max_turns=100, cache_dir=str(work / "cache-large"), **paths)
            lines += _table(f"synthetic {args.large_n}-product catalogue, synthetic goals (test split)",
                            measure_steps(big, args.episodes))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
