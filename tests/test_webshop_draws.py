"""Reproducing an upstream WebShop run: seed=S replays upstream's one stream (ranged prices, then goal bounds) under
random.seed(S); recorded draws give the same goals and rewards without the seed; bad recordings are refused."""

import itertools
import json
import random

import pytest

from hero_gym.envs.webshop.catalogue import load_catalogue
from hero_gym.envs.webshop.draws import DrawsError, RecordedDraws
from hero_gym.envs.webshop.env import WebShopEnv
from hero_gym.envs.webshop.goals import build_goals

SEED = 5  # not the default, so the default seed's goals are a different, checkable outcome
PRICE_RANGE = [10.0 * i for i in range(1, 100)]


def _upstream_run(products, seed, kind):
    """What upstream computes after ``random.seed(seed)``, re-derived independently of the env's code: prices
    (uniform in the range, catalogue order) and goals (bounds from the same global stream), then the 233 shuffle."""
    saved = random.getstate()
    try:
        random.seed(seed)
        prices = {}
        for p in products:
            pricing = p["pricing"]
            prices[p["asin"]] = pricing[0] if len(pricing) == 1 else random.uniform(*pricing[:2])

        def bound(price):
            cands = [x for x in PRICE_RANGE if x > price][:4]
            if len(cands) < 2:
                return 1000000, ""
            upper = sorted(random.sample(cands, 2))[1]
            return upper, f", and price lower than {upper:.2f} dollars"

        goals = []
        if kind == "synthetic":
            counts = {}
            for p in products:
                if p.get("instruction_text") is None:
                    continue
                upper, text = bound(prices[p["asin"]])
                names = sorted(p["options"])
                for combo in itertools.product(*(p["options"][n] for n in names)):
                    opts = dict(zip(names, combo))
                    with_opts = " with " + ", and ".join(f"{k}: {v}" for k, v in opts.items()) if opts else ""
                    goals.append({"asin": p["asin"], "category": p["category"], "query": p["query"],
                                  "name": p["Title"], "product_category": p["product_category"],
                                  "instruction_text": p["instruction_text"] + with_opts + text,
                                  "attributes": p["instruction_attributes"], "price_upper": upper,
                                  "goal_options": opts})
                    for a in p["instruction_attributes"]:
                        counts[a] = counts.get(a, 0) + 1
            for g in goals:
                g["weight"] = sum(1.0 / counts[a] for a in g["attributes"]) / len(g["attributes"])
        else:
            for p in products:
                for entry in p.get("instructions") or []:
                    if not entry["instruction_attributes"]:
                        continue
                    upper, text = bound(prices[p["asin"]])
                    goals.append({"asin": p["asin"], "category": p["category"], "query": p["query"],
                                  "name": p["name"], "product_category": p["product_category"],
                                  "instruction_text": entry["instruction"].strip(".") + text,
                                  "attributes": entry["instruction_attributes"], "price_upper": upper,
                                  "goal_options": entry["instruction_options"], "weight": 1})
        random.seed(233)
        random.shuffle(goals)
        return prices, goals
    finally:
        random.setstate(saved)


@pytest.fixture(autouse=True)
def fresh_goal_tables(monkeypatch):
    # Build every goal table here (cached tables from earlier runs would hide a change in how goals are drawn).
    from hero_gym.envs.webshop import env, goal_table

    monkeypatch.setattr(goal_table, "_read", lambda *a: None)
    monkeypatch.setattr(goal_table, "write_npz", lambda *a: False)
    monkeypatch.setattr(env, "_goals", {})


@pytest.fixture(scope="module")
def products():
    return load_catalogue("1k").products


@pytest.mark.parametrize("kind", ["synthetic", "human"])
def test_seed_reproduces_upstream_prices_and_bounds(products, kind):
    prices, goals = _upstream_run(products, SEED, kind)
    cat = load_catalogue("1k", seed=SEED)
    assert cat.prices == prices
    assert build_goals(cat, kind) == goals  # every field, bounds and texts included, in upstream's order
    assert sum(len(p["pricing"]) > 1 for p in products) == cat.price_draws == 93


def test_default_seed_is_upstream_under_seed_0(products):
    _, goals = _upstream_run(products, 0, "synthetic")
    assert build_goals(load_catalogue("1k"), "synthetic") == goals


def _episodes(env, tasks):
    """Per task: an oracle purchase and a purchase of the first search hit (often over budget), step by step."""
    from hero_gym.envs.webshop.baselines import OraclePolicy

    out = []
    for t in tasks:
        env.reset(seed=t, options={"task_index": t})
        actions, _ = OraclePolicy().plan(env.goal)
        trace = [env.goal] + [env.step(a)[:3] for a in actions]
        _, info = env.reset(seed=t, options={"task_index": t})
        _, _, _, _, info = env.step(f"search[{info['instruction'].replace('[', ' ').replace(']', ' ')}]")
        hit = next(c for c in info["available_actions"]["clickables"] if len(c) == 10 and c.startswith("b"))
        trace += [env.step(f"click[{hit}]")[:3], env.step("click[buy now]")]
        out.append((trace, trace[-1][4]["reward_info"]))
    return out


def test_recorded_draws_give_the_same_goals_and_rewards(products, tmp_path):
    prices, goals = _upstream_run(products, SEED, "synthetic")
    recorded = tmp_path / "draws.json"
    recorded.write_text(json.dumps({"prices": prices, "bounds": [g["price_upper"] for g in goals]}))
    by_seed = WebShopEnv(seed=SEED, max_turns=50)
    by_draws = WebShopEnv(draws=str(recorded), max_turns=50)  # default seed 0: only the draws make it match
    assert list(by_draws._all_goals) == list(by_seed._all_goals) == goals
    assert by_draws.shop.catalogue.prices == prices
    tasks = range(0, 500, 10)
    a, b = _episodes(by_seed, tasks), _episodes(by_draws, tasks)
    assert a == b
    assert {info["r_price"] for _, info in a} == {True, False}  # the bounds decided some rewards
    # The test has power: without the draws the default seed gives other bounds, texts and rewards.
    assert _episodes(WebShopEnv(max_turns=50), tasks) != a


def test_recorded_human_draws():
    products = load_catalogue("1k").products
    prices, goals = _upstream_run(products, SEED, "human")
    env = WebShopEnv(goals="human", draws={"prices": prices, "bounds": [g["price_upper"] for g in goals]})
    assert list(env._all_goals) == goals


@pytest.fixture(scope="module")
def recorded(products):
    prices, goals = _upstream_run(products, SEED, "synthetic")
    return prices, [g["price_upper"] for g in goals], goals


def _goals_with(prices, bounds):
    return build_goals(load_catalogue("1k"), "synthetic", draws=RecordedDraws(prices=prices, bounds=bounds))


def test_bad_recordings_are_refused(recorded):
    prices, bounds, goals = recorded
    ranged = next(a for a, p in load_catalogue("1k").ranges.items())
    fixed = next(g["asin"] for g in goals if g["asin"] not in load_catalogue("1k").ranges)
    with pytest.raises(DrawsError, match="no recorded price for 93 product"):
        _goals_with({}, bounds)
    with pytest.raises(DrawsError, match=f"{ranged} lies outside its listed range"):
        _goals_with({**prices, ranged: 1e9}, bounds)
    with pytest.raises(DrawsError, match=f"{fixed} differs from its listed price"):
        _goals_with({**prices, fixed: prices[fixed] + 1}, bounds)
    with pytest.raises(DrawsError, match="not in the 1k catalogue"):
        _goals_with({**prices, "B000NOTHERE": 1.0}, bounds)
    with pytest.raises(DrawsError, match="6909 recorded bounds for 6910 goals"):
        _goals_with(prices, bounds[:-1])
    # Two goals of one product with different bounds: upstream draws one per product.
    i, j = next((i, j) for i, j in itertools.combinations(range(200), 2)
                if goals[i]["asin"] == goals[j]["asin"] and goals[i]["price_upper"] != 1000000)
    other = [b for b in PRICE_RANGE if b != bounds[i]][0]
    with pytest.raises(DrawsError, match="different recorded bounds"):
        _goals_with(prices, bounds[:i] + [other] + bounds[i + 1:])
    # A bound upstream can never draw for that price (below it).
    k = next(k for k, g in enumerate(goals) if g["price_upper"] != 1000000 and g["goal_options"] == {})
    with pytest.raises(DrawsError, match=f"recorded bound 0.5 of goal {k} "):
        _goals_with(prices, bounds[:k] + [0.5] + bounds[k + 1:])
    for bad in ({"prices": prices}, 5, {"prices": prices, "bounds": "abc"}):
        with pytest.raises(DrawsError):
            RecordedDraws.coerce(bad)
    with pytest.raises(DrawsError, match="finite number"):
        RecordedDraws(prices={ranged: float("nan")}, bounds=[])
