"""Where a WebShop policy's evaluation episodes go wrong: the kinds of its invalid actions, and whether its second
action (the first after the search) opens a product from the results list (session 14).

    python results/sweep-cpu-webshop-warmstart/invalid_kinds.py STORE[,STORE...] [...]   # a folder of episodes.jsonl;
                                                                                       # commas join the parts of one
The kinds are read from the action text: instruction text (the goal's wording pasted as an element), product-ID-like
(8+ lowercase letters and digits), a list of options (two or more commas), a search, or other (an option or name not
on the page).
"""

import re
import sys
from collections import Counter

from hero_gym.records import RunStore

ASIN = re.compile(r"click\[b[0-9a-z]{9}\]")


def kind(action: str) -> str:
    a = action.strip()
    if a.startswith("search["):
        return "search"
    if not a.startswith("click["):
        return "not a click"
    arg = a[len("click["):].rstrip("]")
    if any(w in arg for w in ("price lower than", "size:", "color:", "find me")):
        return "instruction text"
    if re.fullmatch(r"[0-9a-z]{8,}", arg) and re.search(r"\d", arg):
        return "product-ID-like"
    return "list of options" if arg.count(",") >= 2 else "other (not on the page)"


def tally(stores: list[str]) -> tuple[int, int, Counter, Counter]:
    turns, episodes, bad, second = 0, 0, Counter(), Counter()
    for store in stores:
        for ep in RunStore(store).load():  # one record per (task, attempt)
            acts = [(t["action"], bool(t.get("invalid"))) for t in (ep.trajectory or {}).get("turns", [])]
            episodes += 1
            for action, invalid in acts:
                turns += 1
                if invalid:
                    bad[kind(action)] += 1
            if len(acts) < 2:
                second["ended before a second action"] += 1
            elif acts[1][1]:
                second["invalid"] += 1
            else:
                second["opens a product" if ASIN.fullmatch(acts[1][0].strip()) else "other valid"] += 1
            second["episodes that ever open a product"] += any(ASIN.fullmatch(a.strip()) and not inv
                                                               for a, inv in acts)
    return turns, episodes, bad, second


def main(args: list[str]) -> None:
    print("| store | episodes | turns | invalid | kinds of invalid action | second action | "
          "episodes that ever open a product |")
    print("|---|---|---|---|---|---|---|")
    for arg in args:
        turns, n, bad, second = tally(arg.split(","))
        inv = sum(bad.values())
        kinds = "; ".join(f"{k} {v / inv:.0%}" for k, v in bad.most_common()) if inv else "-"
        ever = second.pop("episodes that ever open a product")
        sec = "; ".join(f"{k} {v / n:.0%}" for k, v in second.most_common())
        print(f"| `{arg.split(',')[0]}`{' + parts' if ',' in arg else ''} | {n} | {turns} | {inv / turns:.2f} | "
              f"{kinds} | {sec} | {ever / n:.0%} |")


if __name__ == "__main__":
    main(sys.argv[1:])
