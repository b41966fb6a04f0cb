"""WebShop goals: synthetic (one per option combination of every product with a generated instruction) and human
(one per human-written instruction), in upstream's order after its ``random.seed(233); random.shuffle`` step.

Deviation, documented: upstream draws each goal's price bound from the *unseeded* global RNG, so bounds (and the
"price lower than" text) change between runs while the order does not. We draw them from ``random.Random(seed)``,
in the same order upstream does, so a seed fixes every goal; the 233 shuffle is then applied exactly as upstream.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

from .catalogue import Catalogue

# Candidate bounds: 10, 20, ..., 990 dollars.
PRICE_RANGE = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_BOUND = 1000000
SHUFFLE_SEED = 233
KINDS = ("synthetic", "human")

# kind -> split -> (start, stop or None); indices into the shuffled goal list, clipped to its length.
SPLITS = {
    "synthetic": {"test": (0, 500), "train": (500, None), "all": (0, None)},
    "human": {"test": (0, 500), "eval": (500, 1500), "train": (1500, None), "all": (0, None)},
}


def _price_bound(rng: random.Random, price: float) -> tuple[float | int, str]:
    # Two of the first four round bounds above the price, keep the larger: the goal is always affordable.
    candidates = [p for p in PRICE_RANGE if p > price][:4]
    if len(candidates) < 2:
        return NO_PRICE_BOUND, ""
    _, upper = sorted(rng.sample(candidates, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def synthetic_goals(catalogue: Catalogue, rng: random.Random) -> list[dict]:
    """Unshuffled synthetic goals in catalogue order, weights included."""
    goals = []
    attr_counts: Counter[str] = Counter()
    for product in catalogue.goal_products("synthetic"):
        instruction = product["instruction_text"]
        asin = product["asin"]
        attributes = product["instruction_attributes"]
        if not attributes:
            raise ValueError(f"product {asin} has an instruction but no instruction_attributes")
        upper, price_text = _price_bound(rng, catalogue.prices[asin])
        options = product["options"]
        names = sorted(options)
        for combo in itertools.product(*(options[n] for n in names)):
            goal_options = dict(zip(names, combo))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            goals.append({
                "asin": asin,
                "category": product["category"],
                "query": product["query"],
                "name": product["Title"],
                "product_category": product["product_category"],
                "instruction_text": f"{instruction}{' with ' + option_text if option_text else ''}{price_text}",
                "attributes": attributes,
                "price_upper": upper,
                "goal_options": goal_options,
            })
            attr_counts.update(attributes)
    # Rare attributes weigh more, so weighted sampling spreads over attributes rather than popular products.
    for g in goals:
        g["weight"] = sum(1.0 / attr_counts[a] for a in g["attributes"]) / len(g["attributes"])
    return goals


def human_goals(catalogue: Catalogue, rng: random.Random) -> list[dict]:
    """Unshuffled human goals: per product in catalogue order, per instruction with non-empty attributes."""
    goals = []
    for product in catalogue.goal_products("human"):
        entries = product["instructions"]
        asin = product["asin"]
        for entry in entries:
            attributes = entry.get("instruction_attributes") or []
            if not attributes:
                continue  # upstream skips these
            # Upstream draws a bound per instruction, before building the goal.
            upper, price_text = _price_bound(rng, catalogue.prices[asin])
            goals.append({
                "asin": asin,
                "category": product["category"],
                "query": product["query"],
                "name": product["name"],
                "product_category": product["product_category"],
                "instruction_text": entry["instruction"].strip(".") + price_text,
                "attributes": attributes,
                "price_upper": upper,
                "goal_options": entry.get("instruction_options", []),
                "weight": 1,
            })
    return goals


def build_goals(catalogue: Catalogue, kind: str = "synthetic", seed: int = 0) -> list[dict]:
    """All goals of ``kind`` ('synthetic' or 'human'), price bounds drawn from ``seed``, in the seed-233 order.

    Synthetic goals carry ``goal_options`` as a {name: value} dict, human goals as a list of values (as upstream).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown goal kind {kind!r}; expected one of {KINDS}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    rng = random.Random(seed)
    goals = synthetic_goals(catalogue, rng) if kind == "synthetic" else human_goals(catalogue, rng)
    if not goals:
        raise ValueError(f"the {catalogue.setting} catalogue yields no {kind} goals "
                         f"({'no items_ins instructions' if kind == 'synthetic' else 'no human instruction file'})")
    random.Random(SHUFFLE_SEED).shuffle(goals)
    return goals


def split_indices(kind: str, split: str, n_goals: int) -> range:
    """Goal indices of a split (synthetic: test 0-499, train 500+; human: test 0-499, eval 500-1499, train
    1500+; 'all'), clipped to ``n_goals``: on the 1k human set (13 goals) test is 0-12 and eval/train are empty."""
    if kind not in SPLITS:
        raise ValueError(f"unknown goal kind {kind!r}; expected one of {KINDS}")
    if split not in SPLITS[kind]:
        raise ValueError(f"unknown split {split!r} for {kind} goals; expected one of {sorted(SPLITS[kind])}")
    if not isinstance(n_goals, int) or n_goals < 0:
        raise ValueError(f"n_goals must be a non-negative int, got {n_goals!r}")
    start, stop = SPLITS[kind][split]
    stop = n_goals if stop is None else min(stop, n_goals)
    return range(min(start, n_goals), stop)
