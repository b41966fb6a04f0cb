"""Why a purchase scores below 1: replay each stored evaluation episode's actions in the env (the env is
deterministic given the goal and the actions) and tally the reward components of its purchase (`reward_info`:
product type, goal attributes, goal options, price), per evaluation store.

    python results/sweep-cpu-webshop-warmstart/reward_parts.py STORE [STORE ...]   # STORE: a folder of episodes.jsonl

Needs HERO_GYM_DATA. A purchase whose rebuilt score differs from the stored reward is counted as unreconstructed,
not tallied.
"""

import json
import sys
from collections import Counter
from pathlib import Path

from hero_gym.registry import make

HERE = Path(__file__).parent
EK = json.loads((HERE / "env_kwargs.json").read_text())


def purchase(env, ep: dict) -> dict | None:
    """The purchase's reward_info, or None when the episode bought nothing. The stored actions are cut to 200
    characters (collect_runs), so long searches cannot be replayed; the purchase can: the last product opened, the
    options clicked on it since, scored by the env's own reward function against the episode's goal. Records collected
since session 8 hold the env's reward_info itself."""
    if ep["termination_reason"] != "purchase":
        return None
    if "r_type" in (ep["trajectory"].get("reward_info") or {}):  # stored by collect_runs since session 8
        return ep["trajectory"]["reward_info"]
    env.reset(seed=ep["seed"], options={"task_index": ep["task"]})
    shop, goal = env.unwrapped.shop, env.unwrapped.goal
    asin, options = None, {}
    for turn in ep["trajectory"]["turns"]:
        a = turn["action"]
        if turn["invalid"] or not a.startswith("click[") or not a.endswith("]"):
            if a.startswith("search[") and not turn["invalid"]:
                asin, options = None, {}
            continue
        name = a[6:-1]
        product = shop.catalogue.by_asin.get(asin) if asin else None
        if name.upper() in shop.catalogue.by_asin:
            asin, options = name.upper(), {}
        elif product and name != "buy now":
            for opt_name, values in product.get("options", {}).items():
                if name in values:
                    options[opt_name] = name
    if asin is None:
        return {"unreconstructed": True}
    reward, info = shop.reward_fn(shop.catalogue.by_asin[asin], goal, shop.catalogue.prices.get(asin), options)
    return info if abs(reward - ep["reward"]) < 1e-9 else {"unreconstructed": True}


def tally(store: Path, env) -> dict:
    eps = [json.loads(line) for line in (store / "episodes.jsonl").read_text().splitlines() if line.strip()]
    c = Counter(episodes=len(eps))
    for ep in eps:
        ri = purchase(env, ep)
        if ri is None:
            continue
        c["purchases"] += 1
        if ri.get("unreconstructed"):
            c["unreconstructed"] += 1
            continue
        c["success"] += ep["success"]
        c["type<1"] += ri["r_type"] < 1
        c["attributes<1"] += ri["r_att"] < 1
        c["options<1"] += ri.get("r_option", 1) is not None and ri.get("r_option", 1) < 1
        c["price missed"] += ri.get("r_price", 1) is not None and not ri.get("r_price", 1)
        # the only part short of 1: what a purchase would need to fix to become a success
        short = [k for k, bad in (("type", ri["r_type"] < 1), ("attributes", ri["r_att"] < 1),
                                  ("options", (ri.get("r_option") or 1) < 1 and "r_option" in ri),
                                  ("price", "r_price" in ri and not ri["r_price"])) if bad]
        if len(short) == 1:
            c[f"only {short[0]}"] += 1
    return c


def main(stores):
    env = make("hero_gym/WebShop-v0", split="test", max_turns=8, **EK)
    keys = ["episodes", "purchases", "unreconstructed", "success", "type<1", "attributes<1", "options<1", "price missed",
            "only type", "only attributes", "only options", "only price"]
    print("| store | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for s in map(Path, stores):
        c = tally(s, env)
        p = max(c["purchases"], 1)
        cells = [str(c[k]) if k in ("episodes", "purchases") else f"{c[k]} ({c[k] / p:.0%})" for k in keys]
        print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
