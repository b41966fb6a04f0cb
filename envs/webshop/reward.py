"""WebShop's purchase reward (upstream ``get_reward``, shared/docs/webshop.md §2.7), component for component.

reward = r_type * (matched attributes + matched options + [price <= bound]) / (#attributes + #options + 1)

Upstream quirks kept on purpose: r_type drops to 0 whenever the goal's title nouns and the purchased title's nouns
do not overlap, even if query and category match; fuzzy matches need a rounded token-set score strictly above 85;
colours are normalised by substring against an ordered list; synthetic goals compare ``(name, value)`` tuples
(stringified) against the selected values; the price compared is the catalogue's selling price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

from .text import normalize_color, title_nouns, token_set_ratio

FUZZY_THRESHOLD = 85  # a score must be strictly greater
_PRODUCT_KEYS = ("name", "query", "product_category", "Attributes", "Title", "BulletPoints", "Description")
_GOAL_KEYS = ("name", "query", "product_category", "attributes", "goal_options", "price_upper")


def _require(d: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise KeyError(f"{what} lacks {', '.join(missing)}")


def _categories(text: str) -> set[str]:
    return {part.strip() for part in text.split("›")}


def get_type_reward(purchased: dict, goal: dict) -> dict:
    """How well the purchased product's type matches the goal's: r_type in {0, 0.1, 0.5, 1} and its inputs."""
    query_match = purchased["query"] == goal["query"]
    category_match = len(_categories(purchased["product_category"]) & _categories(goal["product_category"])) >= 2
    bought = title_nouns(purchased["name"])
    wanted = title_nouns(goal["name"])
    # Divided by the goal's noun count with repeats, intersected as sets: upstream's arithmetic.
    title_score = len(set(bought) & set(wanted)) / len(wanted) if wanted else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def _mentions(product: dict, text: str) -> bool:
    return (text in product["Title"].lower() or text in " ".join(product["BulletPoints"]).lower()
            or text in product["Description"].lower())


def get_attribute_reward(purchased: dict, goal: dict) -> tuple[float, int]:
    """(share of goal attributes matched, count): fuzzy against the product's attributes, else a substring of its
    title, bullet points or description."""
    goal_attrs = goal["attributes"]
    if not goal_attrs:
        raise ValueError("goal has no attributes; WebShop goals always carry at least one")
    matched = 0
    for g_attr in goal_attrs:
        if any(token_set_ratio(p_attr, g_attr) > FUZZY_THRESHOLD for p_attr in purchased["Attributes"]):
            matched += 1
        elif _mentions(purchased, g_attr):
            matched += 1
    return matched / len(goal_attrs), matched


def _goal_option_items(goal_options: Any) -> list:
    # Synthetic goals hold {name: value}; upstream iterates .items(), so each goal option is a (name, value) tuple.
    if isinstance(goal_options, Mapping):
        return list(goal_options.items())
    if isinstance(goal_options, (str, bytes)) or not isinstance(goal_options, Iterable):
        raise TypeError(f"goal_options must be a dict or a list of values, got {goal_options!r}")
    return list(goal_options)


def get_option_reward(selected_options: Any, goal_options: Any) -> tuple[float | None, int]:
    """(share of goal options matched by some selected value, count); share is None when the goal has no options.

    ``selected_options``: the {name: value} the agent clicked (or just the values); ``goal_options``: the goal's
    field as stored (dict for synthetic goals, list for human goals).
    """
    values = list(selected_options.values()) if isinstance(selected_options, Mapping) else list(selected_options)
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"selected option values must be strings, got {v!r}")
    selected = [normalize_color(v) for v in values]
    wanted = [normalize_color(o) for o in _goal_option_items(goal_options)]
    matched = sum(1 for g in wanted if any(token_set_ratio(s, g) > FUZZY_THRESHOLD for s in selected))
    return (matched / len(wanted) if wanted else None), matched


def get_reward(purchased: dict, goal: dict, price: float, selected_options: Any) -> tuple[float, dict]:
    """Reward in [0, 1] for buying ``purchased`` at ``price`` with ``selected_options``, plus upstream's verbose
    components: r_type, r_att, w_att, query_match, category_match, title_score, r_option/w_option (goals with
    options), r_price/w_price."""
    _require(purchased, _PRODUCT_KEYS, "purchased product")
    _require(goal, _GOAL_KEYS, "goal")
    if isinstance(price, bool) or not isinstance(price, Real):
        raise TypeError(f"price must be a number, got {price!r}")
    type_info = get_type_reward(purchased, goal)
    bound = goal["price_upper"]
    r_price = (price <= bound) if bound > 0 else None
    r_att, n_att = get_attribute_reward(purchased, goal)
    r_option, n_opt = get_option_reward(selected_options or {}, goal["goal_options"])
    denom = len(goal["attributes"]) + len(goal["goal_options"]) + 1
    reward = (n_att + n_opt + (r_price or 0)) / denom * type_info["r_type"]
    info = {"r_type": type_info["r_type"], "r_att": r_att, "w_att": len(goal["attributes"]) / denom,
            "query_match": type_info["query_match"], "category_match": type_info["category_match"],
            "title_score": type_info["title_score"]}
    if r_option is not None:
        info["r_option"] = r_option
        info["w_option"] = len(goal["goal_options"]) / denom
    if r_price is not None:
        info["r_price"] = r_price
        info["w_price"] = 1 / denom
    return reward, info
