"""WebShop goals: synthetic (one per option combination of every product with a generated instruction) and human
(one per human-written instruction), in upstream's order after its ``random.seed(233); random.shuffle`` step.

Price bounds, reproducibly: upstream draws the prices of ranged products and then every goal's price bound from ONE
unseeded stream (``load_products`` draws the prices, the search index opens without drawing, ``get_goals`` draws
the bounds). ``seed=S`` replays that stream as if upstream had run after ``random.seed(S)``: the catalogue draws the
prices from ``random.Random(S)`` and the bounds continue the same generator (``Catalogue.price_stream``), so both
the prices and the bounds of such an upstream run are reproduced. A run whose state is unknown can be reproduced from
what it drew: pass its recorded prices and bounds as :class:`draws.RecordedDraws`. The 233 shuffle is then applied
exactly as upstream.

Until 2026-11 the bounds came from a fresh ``random.Random(seed)`` instead of continuing the price stream, so goal
texts and ``price_upper`` of results recorded before then differ from today's (same goals, same order, other
bounds); see README "WebShop".

Goals are served as a :class:`goal_table.GoalTable` (built once, cached beside the catalogue, goal dicts made on
access); :func:`build_goals` returns them as a list.
"""

from __future__ import annotations

from .catalogue import Catalogue
from .goal_table import (  # noqa: F401  (public re-exports)
    KINDS, NO_PRICE_BOUND, PRICE_RANGE, SHUFFLE_SEED, GoalTable, bound_candidates, load_or_build, seeded_bounds,
)

# kind -> split -> (start, stop or None); indices into the shuffled goal list, clipped to its length.
SPLITS = {
    "synthetic": {"test": (0, 500), "train": (500, None), "all": (0, None)},
    "human": {"test": (0, 500), "eval": (500, 1500), "train": (1500, None), "all": (0, None)},
}


def goal_table(catalogue: Catalogue, kind: str = "synthetic", seed: int | None = None, draws=None) -> GoalTable:
    """All goals of ``kind`` ('synthetic' or 'human') in the seed-233 order, as a lazy table (cached on disk with
    the catalogue when it has a cache).

    Bounds continue ``random.Random(seed)`` after the catalogue's price draws (``seed`` defaults to the catalogue's
    own seed, which reproduces upstream under ``random.seed(seed)``), or come from ``draws`` (a
    :class:`draws.RecordedDraws`; pass the catalogue priced with its prices, ``draws.apply(catalogue)``).
    Synthetic goals carry ``goal_options`` as a {name: value} dict, human goals as a list of values (as upstream).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown goal kind {kind!r}; expected one of {KINDS}")
    if draws is None:
        if seed is None:
            seed = catalogue.seed
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        table = load_or_build(catalogue, kind, f"seed{seed}",
                              lambda draw_products, draw, order: seeded_bounds(catalogue, draw_products,
                                                                               catalogue.price_stream(seed)))
    else:
        table = load_or_build(catalogue, kind, f"draws{draws.fingerprint}", draws.bounds_by_draw(catalogue))
    if not len(table):
        raise ValueError(f"the {catalogue.setting} catalogue yields no {kind} goals "
                         f"({'no items_ins instructions' if kind == 'synthetic' else 'no human instruction file'})")
    return table


def build_goals(catalogue: Catalogue, kind: str = "synthetic", seed: int | None = None, draws=None) -> list[dict]:
    """:func:`goal_table` as a list of goal dicts."""
    return list(goal_table(catalogue, kind, seed, draws))


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
