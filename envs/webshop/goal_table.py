"""Goals as a compact table: four numbers per goal, the goal dict made on access, the table cached on disk.

A goal is fully determined by its product, which option combination (synthetic) or human instruction it is, its
price bound and its weight. The full catalogue has ~1.3M synthetic goals; as dicts they take tens of seconds to build
and gigabytes to hold, as a table they load from a cache file in milliseconds. :class:`GoalTable` is a read-only
sequence that builds each goal dict when it is indexed, equal to what upstream's ``get_goals`` builds (the tests
compare every goal of the 1k catalogue with an eager construction).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cache_files import read_npz, write_npz
from .catalogue import Catalogue

# Candidate bounds: 10, 20, ..., 990 dollars.
PRICE_RANGE = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_BOUND = 1000000
SHUFFLE_SEED = 233
KINDS = ("synthetic", "human")
TABLE_FORMAT = 1  # bump when the table's meaning changes, so cached tables are rebuilt
_COLUMNS = ("position", "variant", "bound", "weight")


def bound_candidates(price: float) -> list[float]:
    """The first four round bounds above ``price``: upstream draws two of them and keeps the larger."""
    return [p for p in PRICE_RANGE if p > price][:4]


def draw_bound(rng: random.Random, price: float) -> float | int:
    """One goal price bound as upstream draws it (``random.sample`` of two candidates, the larger one), or
    NO_PRICE_BOUND without a draw when fewer than two candidates exist."""
    candidates = bound_candidates(price)
    if len(candidates) < 2:
        return NO_PRICE_BOUND
    return max(rng.sample(candidates, 2))


def price_text(upper: float | int) -> str:
    return "" if upper == NO_PRICE_BOUND else f", and price lower than {upper:.2f} dollars"


def _skeleton(catalogue: Catalogue, kind: str):
    """Unshuffled goals as (position, variant, draw, weight) columns, plus the product position of every bound
    draw in draw order. ``draw`` numbers the bound draw a goal's bound comes from: one per synthetic product
    (shared by all its option combinations, drawn even when it has none), one per human instruction."""
    position, variant, draw, weight, draw_products = [], [], [], [], []
    if kind == "synthetic":
        attr_counts: Counter[str] = Counter()
        per_product = []
        for pos in catalogue.goal_positions["synthetic"]:
            product = catalogue.products[pos]
            attributes = product["instruction_attributes"]
            if not attributes:
                raise ValueError(f"product {product['asin']} has an instruction but no instruction_attributes")
            options = product["options"]
            n = math.prod(len(options[name]) for name in options)
            for a in attributes:  # upstream counts an attribute once per goal it appears in
                attr_counts[a] += n
            per_product.append((pos, n, attributes))
            draw_products.append(pos)
        for d, (pos, n, attributes) in enumerate(per_product):
            # Rare attributes weigh more, so weighted sampling spreads over attributes rather than popular products.
            w = sum(1.0 / attr_counts[a] for a in attributes) / len(attributes) if n else 0.0
            position += [pos] * n
            variant += range(n)
            draw += [d] * n
            weight += [w] * n
    else:
        for pos in catalogue.goal_positions["human"]:
            for j, entry in enumerate(catalogue.products[pos]["instructions"]):
                if not (entry.get("instruction_attributes") or []):
                    continue  # upstream skips these, before drawing a bound
                position.append(pos)
                variant.append(j)
                draw.append(len(draw_products))
                weight.append(1.0)
                draw_products.append(pos)
    cols = (np.array(position, dtype=np.int64), np.array(variant, dtype=np.int64), np.array(draw, dtype=np.int64),
            np.array(weight, dtype=np.float64))
    return cols, draw_products


def shuffle_order(n: int) -> np.ndarray:
    """Upstream's ``random.seed(233); random.shuffle(goals)`` as a permutation: shuffled[i] = goals[order[i]]."""
    order = list(range(n))
    random.Random(SHUFFLE_SEED).shuffle(order)
    return np.array(order, dtype=np.int64)


def seeded_bounds(catalogue: Catalogue, draw_products: list[int], rng: random.Random) -> np.ndarray:
    """One bound per draw, from ``rng`` in draw order (the catalogue's prices decide the candidates)."""
    asins = catalogue.asins
    return np.array([draw_bound(rng, catalogue.prices[asins[pos]]) for pos in draw_products], dtype=np.float64)


def build_table(catalogue: Catalogue, kind: str, bounds_by_draw) -> "GoalTable":
    """The shuffled table. ``bounds_by_draw(draw_products, draw, order)`` returns one bound per draw: a seeded
    stream (:func:`seeded_bounds`) or recorded bounds mapped back to draws (draws.py)."""
    (position, variant, draw, weight), draw_products = _skeleton(catalogue, kind)
    order = shuffle_order(len(position))
    bounds = np.asarray(bounds_by_draw(draw_products, draw, order), dtype=np.float64)
    columns = {"position": position[order], "variant": variant[order], "bound": bounds[draw][order],
               "weight": weight[order]}
    return GoalTable(catalogue, kind, columns)


def load_or_build(catalogue: Catalogue, kind: str, tag: str, bounds_by_draw) -> "GoalTable":
    """The table from the catalogue's cache folder (``tag`` names how its bounds were drawn), else built and
    cached there."""
    folder = catalogue.cache_path("goals", TABLE_FORMAT)
    path = None if folder is None else folder.with_name(f"{folder.name}-{kind}-{tag}.npz")
    if path is not None:
        table = _read(path, catalogue, kind)
        if table is not None:
            return table
    table = build_table(catalogue, kind, bounds_by_draw)
    if path is not None:
        write_npz(path, {"format": TABLE_FORMAT, "kind": kind, "products": len(catalogue)}, table.columns)
    return table


def _read(path: Path, catalogue: Catalogue, kind: str) -> "GoalTable | None":
    got = read_npz(path)
    if got is None:
        return None
    meta, arrays = got
    if meta.get("format") != TABLE_FORMAT or meta.get("kind") != kind or meta.get("products") != len(catalogue):
        return None
    if set(arrays) != set(_COLUMNS) or len({len(a) for a in arrays.values()}) != 1:
        return None
    pos = arrays["position"]
    if len(pos) and not (0 <= int(pos.min()) and int(pos.max()) < len(catalogue)):
        return None
    return GoalTable(catalogue, kind, arrays)


class GoalTable(Sequence):
    """Read-only sequence of goal dicts (upstream's fields and order) over a catalogue; each access builds a new
    dict, so callers may keep or change the one they got."""

    def __init__(self, catalogue: Catalogue, kind: str, columns: dict[str, np.ndarray]):
        if kind not in KINDS:
            raise ValueError(f"unknown goal kind {kind!r}; expected one of {KINDS}")
        self.catalogue, self.kind, self.columns = catalogue, kind, columns
        self._position, self._variant = columns["position"], columns["variant"]
        self._bound, self._weight = columns["bound"], columns["weight"]

    def __len__(self) -> int:
        return len(self._position)

    def __repr__(self) -> str:
        return f"GoalTable({self.kind}, {len(self)} goals, {self.catalogue!r})"

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"goal index {i} out of range for {n} goals")
        i %= n
        product = self.catalogue.products[int(self._position[i])]
        bound = float(self._bound[i])
        upper = NO_PRICE_BOUND if bound == NO_PRICE_BOUND else bound
        if self.kind == "synthetic":
            return _synthetic_goal(product, int(self._variant[i]), upper, float(self._weight[i]))
        return _human_goal(product, int(self._variant[i]), upper)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _combination(options: dict, names: list[str], k: int) -> tuple:
    """The k-th element of ``itertools.product(*(options[n] for n in names))`` (last name varies fastest)."""
    values = []
    for name in reversed(names):
        k, r = divmod(k, len(options[name]))
        values.append(options[name][r])
    return tuple(reversed(values))


def _synthetic_goal(product: dict, k: int, upper, weight: float) -> dict:
    options = product["options"]
    names = sorted(options)
    goal_options = dict(zip(names, _combination(options, names, k)))
    option_text = ", and ".join(f"{n}: {v}" for n, v in goal_options.items())
    return {
        "asin": product["asin"],
        "category": product["category"],
        "query": product["query"],
        "name": product["Title"],
        "product_category": product["product_category"],
        "instruction_text": f"{product['instruction_text']}{' with ' + option_text if option_text else ''}"
                            f"{price_text(upper)}",
        "attributes": product["instruction_attributes"],
        "price_upper": upper,
        "goal_options": goal_options,
        "weight": weight,
    }


def _human_goal(product: dict, j: int, upper) -> dict:
    entry = product["instructions"][j]
    return {
        "asin": product["asin"],
        "category": product["category"],
        "query": product["query"],
        "name": product["name"],
        "product_category": product["product_category"],
        "instruction_text": entry["instruction"].strip(".") + price_text(upper),
        "attributes": entry.get("instruction_attributes") or [],
        "price_upper": upper,
        "goal_options": entry.get("instruction_options", []),
        "weight": 1,
    }

