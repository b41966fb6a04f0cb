"""Speed of the WebShop env: step latency by action type, reset, and catalogue/index/goal preparation.

Episode pattern per goal (as the upstream measurement in shared/docs/webshop.md §4): reset → search the
instruction → Next > → < Prev → click the goal product if listed (else the first) → up to 2 option clicks →
Description → < Prev → Features → < Prev → Buy Now. Each step is timed around ``env.step`` (parsing, transition,
search, rendering, action list, messages, reward). Reference: the original env takes a median 20 ms per step
(search ≈ 60-80 ms) on a 2-core machine.

Two catalogues: the bundled 1k one, and a synthetic one of ``--large-n`` products made by
:mod:`hero_gym.envs.webshop.synthetic` (written once under ``--workdir``). Preparation is timed in fresh
subprocesses: cold (parse + prepare + pickle), cached reload (read the pickle), search index build, goal build.

Run: ``HERO_GYM_DATA=/work/shared/data OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.bench_webshop
[--episodes 200] [--large-n 100000] [--workdir /tmp/webshop-bench] [--no-prep]``
"""

from __future__ import annotations

import argparse
import json
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


_PREP = r"""
import json, sys, time
from hero_gym.envs.webshop.catalogue import load_catalogue
args = json.loads(sys.argv[1])
with_index = args.pop("with_index")
t = time.perf_counter()
cat = load_catalogue(args.pop("setting"), **args)
out = {"load_s": time.perf_counter() - t, "products": len(cat)}
if with_index:
    from hero_gym.envs.webshop.search import SearchEngine
    from hero_gym.envs.webshop.goals import build_goals
    t = time.perf_counter()
    SearchEngine(cat)
    out["index_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["goals"] = len(build_goals(cat, "synthetic", 0))
    out["goals_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def measure_preparation(setting: str, cache_dir: Path, **paths) -> dict:
    """Cold (prepare from the raw file + write the cache) then cached reload, each in a fresh process."""
    for old in cache_dir.glob("catalogue-*.pkl"):
        old.unlink()
    res = {}
    for label in ("cold", "cached"):
        args = {"setting": setting, "cache_dir": str(cache_dir), "with_index": label == "cold", **paths}
        out = subprocess.run([sys.executable, "-c", _PREP, json.dumps(args)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        res[label] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def _table(title: str, steps: dict) -> list[str]:
    lines = [f"### {title}", "", "| step | n | median ms | p90 ms |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['median_ms']:.3f} | {v['p90_ms']:.3f} |" for k, v in steps.items()]
    return lines + [""]


def _prep_lines(title: str, prep: dict) -> list[str]:
    c, w = prep["cold"], prep["cached"]
    return [f"### {title}: preparation (fresh process each)", "",
            f"- products: {c['products']}, synthetic goals: {c['goals']}",
            f"- catalogue prepared from the raw file and cached (cold): {c['load_s']:.2f} s",
            f"- catalogue reloaded from the prepared cache: {w['load_s']:.2f} s",
            f"- search index build (not cached): {c['index_s']:.2f} s",
            f"- synthetic goal build: {c['goals_s']:.2f} s", ""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--large-n", type=int, default=100_000, help="products in the synthetic catalogue (0: skip)")
    ap.add_argument("--workdir", default="/tmp/webshop-bench")
    ap.add_argument("--no-prep", action="store_true", help="skip the (slow) preparation measurements")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"Command: `{' '.join(['python -m hero_gym.benchmarks.bench_webshop'] + (argv or sys.argv[1:]))}`", ""]

    t = time.perf_counter()
    env = WebShopEnv(max_turns=100)
    lines += [f"1k env construction in this process (catalogue from cache, index, goals): "
              f"{time.perf_counter() - t:.2f} s", ""]
    lines += _table("1k catalogue, synthetic goals (test split)", measure_steps(env, args.episodes))
    if not args.no_prep:
        lines += _prep_lines("1k catalogue", measure_preparation("1k", work / "cache-1k"))

    if args.large_n:
        items, attrs = work / f"items_{args.large_n}.json", work / f"attrs_{args.large_n}.json"
        if not items.exists() or not attrs.exists():
            from hero_gym.envs.webshop.synthetic import write_synthetic_attributes, write_synthetic_catalogue

            t = time.perf_counter()
            write_synthetic_catalogue(items, args.large_n)
            write_synthetic_attributes(attrs, args.large_n)
            lines += [f"Synthetic catalogue of {args.large_n} products written in {time.perf_counter() - t:.1f} s "
                      f"({items.stat().st_size / 1e6:.0f} MB).", ""]
        paths = {"items_path": str(items), "attrs_path": str(attrs)}
        if not args.no_prep:
            prep = measure_preparation("full", work / "cache-large", **paths)
            lines += _prep_lines(f"synthetic {args.large_n}-product catalogue", prep)
        big = WebShopEnv(setting="full", max_turns=100, cache_dir=str(work / "cache-large"), **paths)
        lines += _table(f"synthetic {args.large_n}-product catalogue, synthetic goals (test split)",
                        measure_steps(big, args.episodes))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
