"""Recorded random draws of an upstream WebShop run, to reproduce its prices and goals exactly.

Upstream draws the price of every ranged product and then every goal's price bound from one unseeded stream, so a
given run cannot be replayed from a seed unless it called ``random.seed`` first (then ``seed=S`` suffices, see
goals.py). Otherwise record what it drew and pass it here::

    # in the upstream process (a SimServer, or env.server of WebAgentTextEnv):
    json.dump({"prices": server.product_prices, "bounds": [g["price_upper"] for g in server.goals]}, f)
    # here:
    WebShopEnv(draws="recorded.json")            # or draws=RecordedDraws(prices=..., bounds=...)

``bounds`` are in upstream's final goal order (after its seed-233 shuffle, before ``filter_goals``/``limit_goals``),
one per goal, which is what ``server.goals`` holds. Everything is checked against the catalogue: each ranged
product's price must lie in its range, a listed price must be the listed one, each bound must be one upstream could
have drawn for that price, and all goals of one synthetic product must share their bound (upstream draws it once
per product).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalogue import Catalogue
from .goal_table import NO_PRICE_BOUND, bound_candidates


class DrawsError(ValueError):
    """Recorded draws that do not fit the catalogue or the goals; the message says which entry."""


@dataclass(frozen=True)
class RecordedDraws:
    """Prices and goal price bounds recorded from an upstream run."""

    prices: Mapping[str, float]
    """ASIN -> selling price (upstream's ``product_prices``); must cover every product listed with a price range;
    products with one listed price may be included (they must then match) or left out."""
    bounds: Sequence[float]
    """``price_upper`` of every goal in upstream's final goal order (``[g["price_upper"] for g in
    server.goals]``); 1000000 where upstream set no bound."""
    fingerprint: str = field(init=False, repr=False, compare=False)
    """A digest of the draws (names the cached goal table)."""

    def __post_init__(self):
        if not isinstance(self.prices, Mapping):
            raise DrawsError(f"prices must map ASIN -> price, got {type(self.prices).__name__}")
        if isinstance(self.bounds, (str, bytes)) or not isinstance(self.bounds, Sequence):
            raise DrawsError(f"bounds must be a list of numbers, got {type(self.bounds).__name__}")
        prices = {}
        for asin, v in self.prices.items():
            prices[str(asin)] = _number(v, f"price of {asin!r}")
        bounds = tuple(_number(v, f"bound {i}") for i, v in enumerate(self.bounds))
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "bounds", bounds)
        digest = hashlib.sha256(json.dumps([sorted(prices.items()), bounds]).encode()).hexdigest()[:16]
        object.__setattr__(self, "fingerprint", digest)

    @classmethod
    def load(cls, path: str | Path) -> "RecordedDraws":
        """From a JSON file ``{"prices": {asin: price}, "bounds": [...]}``."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DrawsError(f"cannot read recorded draws from {path}: {e}") from None
        if not isinstance(raw, dict) or set(raw) != {"prices", "bounds"}:
            raise DrawsError(f"{path}: expected a JSON object with exactly the keys 'prices' and 'bounds'")
        return cls(prices=raw["prices"], bounds=raw["bounds"])

    @classmethod
    def coerce(cls, value) -> "RecordedDraws | None":
        """None, a RecordedDraws, a mapping with 'prices' and 'bounds', or a path to such a JSON file."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, (str, Path)):
            return cls.load(value)
        if isinstance(value, Mapping) and set(value) == {"prices", "bounds"}:
            return cls(prices=value["prices"], bounds=value["bounds"])
        raise DrawsError("draws must be a RecordedDraws, a {'prices': ..., 'bounds': ...} mapping or a JSON file "
                         f"path, got {type(value).__name__}")

    def apply(self, catalogue: Catalogue) -> Catalogue:
        """The catalogue selling at the recorded prices (checked against each product's listing)."""
        prices = dict(catalogue.prices)
        for asin, v in self.prices.items():
            if asin not in prices:
                raise DrawsError(f"recorded price for {asin!r}, which is not in the {catalogue.setting} catalogue")
            if asin in catalogue.ranges:
                low, high = sorted(catalogue.ranges[asin])  # some listings give the range high to low
                if not low <= v <= high:
                    raise DrawsError(f"recorded price {v} of {asin} lies outside its listed range {low}-{high}")
            elif v != prices[asin]:
                raise DrawsError(f"recorded price {v} of {asin} differs from its listed price {prices[asin]}")
            prices[asin] = v
        missing = [a for a in catalogue.ranges if a not in self.prices]
        if missing:
            raise DrawsError(f"no recorded price for {len(missing)} product(s) listed with a price range, e.g. "
                             f"{missing[0]}: record upstream's product_prices for every product")
        return catalogue.with_prices(prices)

    def bounds_by_draw(self, catalogue: Catalogue):
        """For :func:`goal_table.build_table`: the recorded bounds mapped back to upstream's draws, checked."""
        priced = self.apply(catalogue)

        def by_draw(draw_products: list[int], draw: np.ndarray, order: np.ndarray) -> np.ndarray:
            if len(self.bounds) != len(order):
                raise DrawsError(f"{len(self.bounds)} recorded bounds for {len(order)} goals: record one bound per "
                                 "goal of upstream's goal list, before filter_goals/limit_goals")
            unshuffled = np.empty(len(order), dtype=np.float64)
            unshuffled[order] = self.bounds  # shuffled[i] = goals[order[i]]
            out = np.full(len(draw_products), np.nan)
            for g, d in enumerate(draw.tolist()):
                b = unshuffled[g]
                if np.isnan(out[d]):
                    out[d] = b
                elif out[d] != b:
                    raise DrawsError(f"goals of product {priced.asins[draw_products[d]]} have different recorded "
                                     f"bounds ({out[d]} and {b}); upstream draws one bound per product")
            asins = priced.asins
            for d, b in enumerate(out.tolist()):
                if math.isnan(b):
                    continue  # a product without goals (an empty option group): its draw is never seen
                price = priced.prices[asins[draw_products[d]]]
                candidates = bound_candidates(price)
                allowed = candidates[1:] if len(candidates) >= 2 else [NO_PRICE_BOUND]
                if b not in allowed:
                    where = [i for i, o in enumerate(order.tolist()) if draw[o] == d][0]
                    raise DrawsError(f"recorded bound {b} of goal {where} ({asins[draw_products[d]]}, price {price}) "
                                     f"is not one upstream can draw; expected one of {allowed}")
            return out

        return by_draw


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DrawsError(f"{what} must be a finite number, got {v!r}")
    return float(v)
