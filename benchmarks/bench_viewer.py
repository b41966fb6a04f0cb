"""Size and opening time of `hero-gym view` reports.

Size: each given run directory (real, distinct episodes) becomes a report; the table gives its bytes per 1,000
episodes beside the run's own episodes.jsonl.

Opening time: a run of ``--large`` episodes is made by copying the first run's episodes under new (task, attempt)
keys (the copies make its size unrepresentative, so only its time is reported). Headless Chromium loads the run page
(index parse, task x attempt grid of every episode, first page of the list) and one episode page (decompresses one
chunk), and the wall time until the DOM is dumped is compared, as a ratio, with the same two pages of a report of the
first 8 episodes, in the same process: Chromium's own start-up is in both. One warm-up, then ``--repeats`` runs each,
medians.

Run: ``python -m hero_gym.benchmarks.bench_viewer RUN_DIR [RUN_DIR ...] [--large 10000] [--repeats 3]
[--workdir /tmp/viewer-bench] [--md results/viewer.md]``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from hero_gym.records import EPISODES, RUN_JSON
from hero_gym.viewer import build_report
from hero_gym.viewer.browser import dump_dom


def _copy_run(src: Path, dst: Path, n: int) -> Path:
    lines = (src / EPISODES).read_text().splitlines()
    dst.mkdir(parents=True, exist_ok=True)
    (dst / RUN_JSON).write_text((src / RUN_JSON).read_text())
    k = 4
    with open(dst / EPISODES, "w") as f:
        for i in range(n):
            rec = json.loads(lines[i % len(lines)])
            f.write(json.dumps({**rec, "task": i // k, "attempt": i % k}) + "\n")
    return dst


def _open_s(page: Path, fragment: str, repeats: int) -> tuple[float, float, int]:
    """Median wall seconds of Chromium dumping the page, median in-page ms from navigation to rendered, elements."""
    dump_dom(page, fragment)  # warm-up (disk cache, fonts)
    times, ms, nodes = [], [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        dom = dump_dom(page, fragment)
        times.append(time.perf_counter() - t)
        found = re.search(r'data-ready="1"[^>]*data-ms="(\d+)"|data-ms="(\d+)"[^>]*data-ready="1"', dom)
        if not found:
            raise RuntimeError(f"{page}{fragment} did not finish rendering")
        ms.append(float(found.group(1) or found.group(2)))
        nodes = dom.count("<") - dom.count("</")
    return statistics.median(times), statistics.median(ms), nodes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="evaluation run directories (real episodes)")
    ap.add_argument("--large", type=int, default=10_000, help="episodes of the synthetic large run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/viewer-bench")
    ap.add_argument("--md", help="append the tables to this Markdown file")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    lines = ["| run | episodes | episodes.jsonl MB | report MB | report MB per 1,000 episodes | build s |",
             "|---|---:|---:|---:|---:|---:|"]
    for run in map(Path, args.runs):
        n = len((run / EPISODES).read_text().splitlines())
        t = time.perf_counter()
        page = build_report([run], work / f"{run.name}.html")
        build_s = time.perf_counter() - t
        src, size = (run / EPISODES).stat().st_size / 1e6, page.stat().st_size / 1e6
        lines.append(f"| {run.name} | {n} | {src:.2f} | {size:.2f} | {size / n * 1000:.2f} | {build_s:.1f} |")

    first = Path(args.runs[0])
    small = build_report([_copy_run(first, work / "small", 8)], work / "small.html")
    t = time.perf_counter()
    large = build_report([_copy_run(first, work / "large", args.large)], work / "large.html")
    large_build = time.perf_counter() - t
    lines += ["", f"Opening ({args.large:,} episodes copied from {first.name}; report {large.stat().st_size / 1e6:.1f} MB, "
              f"built in {large_build:.1f} s) against 8 episodes, headless Chromium, median of {args.repeats}:", "",
              "| page | 8 episodes: rendered after ms | large: rendered after ms | 8 episodes: Chromium wall s | "
              "large: Chromium wall s | wall ratio | DOM elements (large) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, frag in (("run page (grid + first 100 rows)", "#run/0"), ("episode page", "#ep/0/0/1")):
        s, s_ms, _ = _open_s(small, frag, args.repeats)
        lg, lg_ms, nodes = _open_s(large, frag, args.repeats)
        lines.append(f"| {name} | {s_ms:.0f} | {lg_ms:.0f} | {s:.2f} | {lg:.2f} | {lg / s:.2f} | {nodes:,} |")
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
