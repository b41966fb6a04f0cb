"""CPU time of the hostile inputs issue 10 names (and the worst we found), one call each, as Markdown rows.

Run: ``HERO_GYM_DATA=/work/shared/data OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.hostile_probes``
"""

from __future__ import annotations

import time

from hero_gym.actions import parse_action
from hero_gym.envs.tau.common_tools import calculate_v1

PROBES = {
    "calculate, `*`.join(['10**30000'] * 117) (1,053 chars)":
        lambda: calculate_v1(None, expression="*".join(["10**30000"] * 117)),
    "calculate, the same chain cut at 20,000 chars":
        lambda: calculate_v1(None, expression="*".join(["10**30000"] * 2000)[:20000]),
    "calculate, 130 x 7**35000 summed (worst case under the operator bound)":
        lambda: calculate_v1(None, expression="+".join(["7**35000"] * 130)),
    "parse, 101 brackets then an unterminated string of escaped quotes (18,129 chars)":
        lambda: parse_action('{"name": "think", "arguments": ' + "[" * 101 + '"' + '\\"' * 9000).error,
    "parse, a call whose arguments nest 3,300 alternating object/array levels":
        lambda: parse_action('{"name": "think", "arguments": ' + '{"a":[' * 1650 + "1" + "]}" * 1650 + "}").error,
}


def main() -> None:
    print("| input | CPU ms | answer |\n|---|---|---|")
    for name, fn in PROBES.items():
        t0 = time.thread_time()
        out = fn()
        print(f"| {name} | {(time.thread_time() - t0) * 1e3:.1f} | {str(out)[:100]} |")


if __name__ == "__main__":
    main()
