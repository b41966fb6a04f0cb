"""Memory of a long evaluation: resident set size (RSS) as `run_eval` stores more and more episodes.

Oracle episodes (no model, so the harness is all there is to measure) on an env's test split, k attempts per task,
into a fresh run directory; the run is widened step by step (1,000 episodes, then 10,000 by default) in the same
process, as a resume would do, and the RSS is read after each step, then after the summary the CLI prints at the
end. A harness that keeps its trajectories grows with every episode; a bounded one stays flat after warm-up.

    HERO_GYM_DATA=... python benchmarks/bench_eval_memory.py --steps 1000,10000 [--batch-size 32]

Prints a Markdown table (RSS in MiB, growth per 1,000 episodes between the steps, episodes per second).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
from pathlib import Path


def rss_mib() -> float:
    """Current resident set size of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="hero_gym/WebShop-v0")
    p.add_argument("--tasks", type=int, default=500, help="tasks 0..N-1 of the test split (default %(default)s)")
    p.add_argument("--steps", default="1000,10000", help="episode counts to measure at (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=None, help="episodes live at once (default: run_eval's)")
    p.add_argument("--dir", default=None, help="run directory (default: a temporary one)")
    args = p.parse_args(argv)

    from hero_gym.evaluate import run_eval

    steps = [int(s) for s in args.steps.split(",")]
    if any(math.ceil(b / args.tasks) <= math.ceil(a / args.tasks) for a, b in zip(steps, steps[1:])):
        p.error(f"steps must grow by at least --tasks ({args.tasks}) episodes each (k attempts per task)")
    tmp = tempfile.TemporaryDirectory(prefix="bench_eval_memory_")
    out = Path(args.dir or tmp.name) / "run"
    kw = dict(tasks=f"0-{args.tasks - 1}", progress=False, policy_kwargs=None)
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    # warm-up: the env's catalogue/index and the oracle are built once; measure from there
    run_eval(args.env, "oracle", Path(tmp.name) / "warm", k=1, **{**kw, "tasks": "0-9"})
    gc.collect()
    rows = [{"episodes": 0, "rss_mib": rss_mib(), "seconds": 0.0}]
    for n in steps:
        k = math.ceil(n / args.tasks)
        t0 = time.perf_counter()
        run_eval(args.env, "oracle", out, k=k, **kw)
        dt = time.perf_counter() - t0
        gc.collect()
        rows.append({"episodes": k * args.tasks, "rss_mib": rss_mib(), "seconds": dt})
    from hero_gym.benchmarks.stats import format_summary, summarize
    from hero_gym.records import load_frame

    format_summary(summarize(load_frame([out]), n_boot=200))
    gc.collect()
    after_summary = rss_mib()

    print(f"{args.env}, oracle, batch {args.batch_size or 'default'}, python {sys.version.split()[0]}\n")
    print("| episodes stored | RSS (MiB) | growth since previous step (MiB per 1,000 episodes) | episodes/s of the step |")
    print("|---:|---:|---:|---:|")
    for prev, row in zip([None, *rows], rows):
        if prev is None:
            print(f"| 0 (after warm-up) | {row['rss_mib']:.0f} | - | - |")
            continue
        added = row["episodes"] - prev["episodes"]
        growth = (row["rss_mib"] - prev["rss_mib"]) / added * 1000
        print(f"| {row['episodes']:,} | {row['rss_mib']:.0f} | {growth:+.1f} | {added / row['seconds']:.0f} |")
    print(f"\nRSS after the summary table of all {rows[-1]['episodes']:,} episodes: {after_summary:.0f} MiB")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
