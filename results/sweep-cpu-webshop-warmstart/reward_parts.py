"""Why a purchase scores below 1: rebuild each stored evaluation episode's purchase (the product bought and the
options clicked on it) and tally the reward components of it (`reward_info`: product type, goal attributes, goal
options, price), per evaluation store; and whether the same product would have scored 1 with its best options.

    python results/sweep-cpu-webshop-warmstart/reward_parts.py STORE [STORE ...]   # STORE: a folder of episodes.jsonl

Needs HERO_GYM_DATA. A purchase whose rebuilt score differs from the stored reward is counted as unreconstructed,
not tallied.
"""

import json
import sys
from collections import Counter
from pathlib import Path

from hero_gym.records import RunStore
from hero_gym.registry import make
from hero_gym.types import EpisodeRecord

HERE = Path(__file__).parent
EK = json.loads((HERE / "env_kwargs.json").read_text())


def purchase(env, ep: EpisodeRecord) -> tuple[dict, dict, str | None] | None:
    """(reward_info, options clicked on the bought product, its ASIN) of a purchase; None when the episode bought
    nothing.
    The stored actions are cut to 200 characters (collect_runs), so long searches cannot be replayed; the purchase
    can: the last product opened and the options clicked on it since, scored by the env's own reward function
    against the episode's goal. Records collected since session 8 hold the env's reward_info itself."""
    if ep.termination_reason != "purchase":
        return None
    env.reset(seed=ep.seed, options={"task_index": ep.task})
    shop, goal = env.unwrapped.shop, env.unwrapped.goal
    asin, options = None, {}
    for turn in ep.trajectory["turns"]:
        a = turn["action"]
        if turn["invalid"]:
            continue
        if a.startswith("search["):
            asin, options = None, {}
        if not (a.startswith("click[") and a.endswith("]")):
            continue
        name = a[6:-1]
        if name.upper() in shop.catalogue.by_asin:
            asin, options = name.upper(), {}
        elif asin and name != "buy now":
            for opt_name, values in shop.catalogue.by_asin[asin].get("options", {}).items():
                if name in values:
                    options[opt_name] = name
    info = {"unreconstructed": True}
    if asin is not None:
        reward, scored = shop.reward_fn(shop.catalogue.by_asin[asin], goal, shop.catalogue.prices.get(asin), options)
        if abs(reward - ep.reward) < 1e-9:
            info = scored
    stored = ep.trajectory.get("reward_info") or {}
    if "r_type" in stored:  # the env's own; the rebuilt product is used only when it scores the stored reward
        return stored, options, None if info.get("unreconstructed") else asin
    return info, options, asin


def best_options_win(env, asin: str) -> bool:
    """Whether the product bought scores 1 with the best value of each of its options (chosen one option at a time:
    the option part counts each goal option on its own). Call after purchase(), which reset env to the goal."""
    shop, goal = env.unwrapped.shop, env.unwrapped.goal
    product, price = shop.catalogue.by_asin[asin], shop.catalogue.prices.get(asin)
    best: dict = {}
    for name, values in product.get("options", {}).items():
        best[name] = max(values, key=lambda v: shop.reward_fn(product, goal, price, {**best, name: v})[0])
    return shop.reward_fn(product, goal, price, best)[0] >= 1 - 1e-9


def short_parts(ri: dict) -> list[str]:
    """The reward parts a purchase did not get in full."""
    parts = [("type", ri["r_type"] < 1), ("attributes", ri["r_att"] < 1),
             ("options", "r_option" in ri and ri["r_option"] < 1), ("price", "r_price" in ri and not ri["r_price"])]
    return [name for name, short in parts if short]


def tally(store: Path, env) -> Counter:
    # RunStore: one record per (task, attempt), a retried error replaced by its result
    eps = [ep for ep in RunStore(store).load() if ep.error is None]
    c = Counter(episodes=len(eps))
    for ep in eps:
        got = purchase(env, ep)
        if got is None:
            continue
        ri, clicked, asin = got
        c["purchases"] += 1
        if ri.get("unreconstructed"):
            c["unreconstructed"] += 1
            continue
        c["success"] += ep.success
        c["an option clicked"] += bool(clicked)
        short = short_parts(ri)
        for part in short:
            c[f"{part} short"] += 1
        if len(short) == 1:  # what this purchase alone lacked to be a success
            c[f"only {short[0]}"] += 1
        if short == ["options"] and asin and best_options_win(env, asin):
            c["a success with its best options"] += 1
    return c


def main(stores):
    env = make("hero_gym/WebShop-v0", split="test", max_turns=8, **EK)
    keys = ["episodes", "purchases", "unreconstructed", "success", "an option clicked", "type short",
            "attributes short", "options short", "price short", "only type", "only attributes", "only options",
            "only price", "a success with its best options"]
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
