"""The WebShop product catalogue: streaming load of the raw scrape, upstream's product cleaning, prices, and a
prepared-catalogue cache on disk.

Semantics follow WebShop's ``load_products`` (see shared/docs/webshop.md §2.5) with one documented deviation: the
price of a product listed with a range ("$a - $b") is drawn uniformly from ``random.Random(seed)`` in catalogue
order, where upstream draws it from the unseeded global RNG (so upstream prices differ from run to run).

The raw file is read with ijson (a C JSON event parser), one product at a time, so the 5.5 GB full scrape never sits
in memory as text. Big files (the full scrape) are built "packed": each prepared product is JSON-encoded into one
blob file, two halves of the input on two cores (bulk.py), and served from a memory map (store.py). The prepared
catalogue (products or blob offsets, prices, title nouns) is cached under a key made of the inputs' paths, sizes
and mtimes plus every parameter that changes the result, as JSON and numeric arrays (cache_files.py): no cache file
is ever unpickled, so a planted file cannot run code. Measured on a 1.18M-product, 4.7 GB synthetic file: see
results/bench_webshop.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import mmap
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from hero_gym import data as hg_data

from . import bulk
from .cache_files import read_npz, write_npz
from .products import (  # noqa: F401  (re-exported: the catalogue's public cleaning helpers)
    DEFAULT_PRICE, GOAL_FIELDS, CatalogueError, carries, draw_prices, iter_prepared, iter_products, load_mapping,
    no_gc, parse_options, parse_pricing, prepare_product, prepare_products,
)
from .store import PackedIndex, PackedProducts, map_file
from .text import known_nouns, remember_nouns, title_nouns, title_nouns_many

# Bump when the prepared form changes, so stale caches are never read.
CACHE_FORMAT = 4  # 4: JSON blobs and an .npz cache instead of pickles; ranged-price bounds kept
CACHE_ENV_VAR = "HERO_GYM_CACHE"
# Up to this many products, every title's nouns are tagged at build time and cached with the catalogue (1k: ~2 s).
# Above it (the 1.18M full scrape would take ~20 min), titles are tagged on first purchase (a few ms) and memoised.
NOUN_PRECOMPUTE_ALL_MAX = 50_000
# Product files at least this big are kept packed (one JSON blob per product, see store.py), not as dicts: the
# cache of an unpacked catalogue is one JSON document, and reloading 100 MB of it takes seconds.
PACKED_MIN_BYTES = 32 << 20


_SETTINGS = {
    # setting -> (dataset, items, attributes, human instructions)
    "1k": ("webshop-1k", "webshop/items_shuffle_1000.json", "webshop/items_ins_v2_1000.json",
           "webshop/items_human_ins_subset_1k.json"),
    "full": ("webshop-full", "webshop/items_shuffle.json", "webshop/items_ins_v2.json",
             "webshop/items_human_ins.json"),
}


@dataclass
class Catalogue:
    """Prepared products (upstream field names), an ASIN index and the price each product sells at.

    ``products`` is a list of dicts, or for big catalogues a read-only :class:`PackedProducts` sequence that decodes
    on access; ``by_asin`` is then a read-only mapping. Treat both as read-only in either case.
    """

    products: Sequence[dict]
    prices: dict[str, float]
    setting: str = "1k"
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    # kind -> positions of the products that carry goals of that kind (saves decoding a packed catalogue)
    goal_positions: dict[str, list[int]] | None = None
    # ASIN -> (low, high) of every product listed with a price range, in catalogue order: the products whose
    # price is a random draw (one draw each, in this order, upstream's ``generate_product_prices``)
    ranges: dict[str, tuple[float, float]] | None = None
    by_asin: Mapping[str, dict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.products, PackedProducts):
            self.by_asin = PackedIndex(self.products)
        else:
            self.by_asin = {p["asin"]: p for p in self.products}
        if self.goal_positions is None:
            self.goal_positions = {k: [i for i, p in enumerate(self.products) if carries(p, k)]
                                   for k in GOAL_FIELDS}
        if self.ranges is None:
            self.ranges = {p["asin"]: tuple(p["pricing"][:2]) for p in self.products
                           if len(p.get("pricing") or ()) > 1}

    @property
    def price_draws(self) -> int:
        """How many random draws the prices took from the seeded stream (one per ranged product); goal price
        bounds continue the same stream after them, as upstream's single unseeded stream does."""
        return len(self.ranges)

    def price_stream(self, seed: int | None = None) -> random.Random:
        """The generator upstream would hold after ``random.seed(seed)`` and this catalogue's price draws (default:
        the catalogue's own seed): the one goal price bounds are drawn from."""
        rng = random.Random(self.seed if seed is None else seed)
        for _ in range(self.price_draws):
            rng.random()  # random.uniform(a, b) is a + (b - a) * random(): exactly one draw
        return rng

    def with_prices(self, prices: Mapping[str, float]) -> "Catalogue":
        """A view of this catalogue that sells at ``prices`` instead (same products, search index and cache
        folder); e.g. prices recorded from an upstream run."""
        view = copy.copy(self)
        view.prices = dict(prices)
        return view

    @property
    def packed(self) -> bool:
        return isinstance(self.products, PackedProducts)

    @property
    def asins(self) -> list[str]:
        """ASINs in catalogue order (without decoding packed products)."""
        return self.products.asins if self.packed else [p["asin"] for p in self.products]

    def cache_path(self, what: str, version: int) -> Path | None:
        """A path under this catalogue's cache dir for derived data (e.g. the search index), keyed by the
        catalogue's inputs; None when the catalogue was not loaded with a cache."""
        key, folder = getattr(self, "_cache_key", None), getattr(self, "_cache_dir", None)
        return None if key is None else Path(folder) / f"{what}-v{version}-{key}"

    def goal_products(self, kind: str) -> Iterator[dict]:
        """Products that carry goals of ``kind`` ('synthetic': an instruction; 'human': human instructions), in
        catalogue order."""
        if kind not in GOAL_FIELDS:
            raise ValueError(f"unknown goal kind {kind!r}; expected one of {sorted(GOAL_FIELDS)}")
        for i in self.goal_positions[kind]:
            yield self.products[i]

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        return f"Catalogue(setting={self.setting!r}, seed={self.seed}, products={len(self.products)})"

    def product(self, asin: str) -> dict:
        """The product with this ASIN (case-insensitive, as the env lowercases clicks); KeyError if unknown."""
        p = self.by_asin.get(asin) or self.by_asin.get(asin.upper())
        if p is None:
            raise KeyError(f"no product with ASIN {asin!r} in the {self.setting} catalogue")
        return p

    def nouns(self, asin: str) -> tuple[str, ...]:
        """Noun tokens of the product's name, as the type reward uses them (memoised)."""
        return title_nouns(self.product(asin)["name"])

    @cached_property
    def attribute_to_asins(self) -> dict[str, set[str]]:
        """Attribute string -> ASINs carrying it (upstream's ``<a>`` search)."""
        out: dict[str, set[str]] = {}
        for p in self.products:
            for a in p["Attributes"]:
                out.setdefault(a, set()).add(p["asin"])
        return out


# --------------------------------------------------------------------------------------------- loading
def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV_VAR)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "hero_gym"
    return base / "webshop"


def _resolve(setting: str, items_path, attrs_path, human_ins_path) -> tuple[Path, Path | None, Path | None]:
    dataset, items_rel, attrs_rel, human_rel = _SETTINGS[setting]
    if items_path is None and setting == "full":
        try:
            hg_data.manifest(dataset)
        except ValueError:
            raise hg_data.DataError(
                "the full WebShop catalogue (items_shuffle.json, 5.48 GB) is not bundled: pass items_path= and "
                "attrs_path= (and human_ins_path= for human goals), or run `hero-gym data download webshop-full`"
            ) from None

    def pick(given, rel, required):
        if given is not None:
            p = Path(given).expanduser()
            if not p.is_file():
                raise hg_data.DataError(f"WebShop catalogue input not found: {p}")
            return p
        try:
            return hg_data.path(dataset, rel)
        except hg_data.MissingDataError:  # a present but corrupted file is an error even when optional
            if required:
                raise
            return None

    items = pick(items_path, items_rel, True)
    # With user-supplied products, never silently pair them with the bundled 1k attribute files.
    own = items_path is not None
    attrs = pick(attrs_path, attrs_rel, True) if not own or attrs_path is not None else None
    human = pick(human_ins_path, human_rel, False) if not own or human_ins_path is not None else None
    return items, attrs, human


def _cache_key(setting, seed, num_products, packed, paths) -> str:
    h = hashlib.sha256(f"v{CACHE_FORMAT}|{setting}|{seed}|{num_products}|{packed}".encode())
    for p in paths:
        if p is None:
            h.update(b"|-")
            continue
        st = p.stat()
        h.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


_loaded: dict[str, Catalogue] = {}


def load_catalogue(setting: str = "1k", *, seed: int = 0, items_path=None, attrs_path=None, human_ins_path=None,
                   cache_dir=None, num_products: int | None = None, use_cache: bool = True,
                   packed: bool | None = None) -> Catalogue:
    """Load (or reuse) the prepared WebShop catalogue.

    ``setting`` "1k" reads the bundled 1,000-product files through :mod:`hero_gym.data`; "full" the 1.18M-product
    scrape (``items_path``/``attrs_path``/``human_ins_path`` override either). ``seed`` fixes the prices of ranged
    products; ``num_products`` keeps only the first N raw records, as upstream's ``num_products``. The result is
    memoised in-process and cached under ``cache_dir`` (default ``$HERO_GYM_CACHE/webshop`` or
    ``~/.cache/hero_gym/webshop``); ``use_cache=False`` rebuilds from the inputs and stores nothing. ``packed``
    keeps products as JSON blobs decoded on access (default: for product files of 32 MiB or more, e.g. the
    full scrape; not the 1k one). Callers must treat the catalogue as read-only: envs share it.
    """
    if setting not in _SETTINGS:
        raise ValueError(f"unknown WebShop setting {setting!r}; expected one of {sorted(_SETTINGS)}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if num_products is not None and (not isinstance(num_products, int) or num_products < 1):
        raise ValueError(f"num_products must be a positive int or None, got {num_products!r}")
    items, attrs, human = _resolve(setting, items_path, attrs_path, human_ins_path)
    if packed is None:
        packed = items.stat().st_size >= PACKED_MIN_BYTES
    key = _cache_key(setting, seed, num_products, bool(packed), (items, attrs, human))
    if use_cache and key in _loaded:
        return _loaded[key]
    cache_file = Path(cache_dir or default_cache_dir()) / f"catalogue-{key}.npz"
    cat = _read_cache(cache_file) if use_cache else None
    if cat is None:
        blob_path = cache_file.with_suffix(".blobs") if use_cache else None
        cat = _build(setting, seed, num_products, items, attrs, human, bool(packed), blob_path)
        if use_cache:
            _write_cache(cache_file, cat)
    remember_nouns(cat.__dict__.pop("_nouns", {}))
    if use_cache:
        cat._cache_key, cat._cache_dir = key, cache_file.parent
        _loaded[key] = cat
    return cat


def _build(setting, seed, num_products, items, attrs, human, packed=False, blob_path=None) -> Catalogue:
    sources = {"items": str(items), "attrs": str(attrs), "human_ins": str(human)}
    with no_gc():
        attr_map = load_mapping(attrs)
        human_map = json.loads(human.read_text(encoding="utf-8")) if human is not None else {}
        prepared = iter_prepared(iter_products(items), attr_map, human_map, num_products, str(items))
        two = None
        if packed and blob_path is not None and num_products is None and (os.cpu_count() or 1) > 1 \
                and items.stat().st_size >= bulk.PARALLEL_MIN_BYTES:
            two = bulk.pack_two_halves(items, attr_map, human_map, blob_path)
        if two is not None:
            products, pairs, goal_positions = two
        elif packed:
            products, pairs, goal_positions = bulk.pack_sequential(prepared, blob_path)
        else:
            products, goal_positions = list(prepared), None
            pairs = ((p["asin"], p["pricing"]) for p in products)
        del attr_map
        if not products:
            raise CatalogueError(f"{items}: no usable products")
        pairs = list(pairs)
        ranges = {asin: tuple(pricing[:2]) for asin, pricing in pairs if len(pricing) > 1}
        cat = Catalogue(products=products, prices=draw_prices(pairs, seed), setting=setting, seed=seed,
                        sources=sources, goal_positions=goal_positions, ranges=ranges)
    names = sorted({p["name"] for p in products}) if len(products) <= NOUN_PRECOMPUTE_ALL_MAX else []
    nouns = {n: known_nouns(n) for n in names}
    todo = [n for n, v in nouns.items() if v is None]  # another seed's build may have tagged them already
    nouns.update(zip(todo, title_nouns_many(todo)))
    cat._nouns = nouns
    return cat


def _read_cache(path: Path) -> Catalogue | None:
    got = read_npz(path)
    if got is None:
        return None
    meta, arrays = got
    try:
        if meta.get("format") != CACHE_FORMAT:
            return None
        asins = arrays["asins"].tolist() if "asins" in arrays else meta["asins"]
        prices = arrays["prices"].tolist()
        if len(prices) != len(asins):
            return None
        if meta["packed"]:  # the products live in the memory-mapped blob file beside it
            blobs = path.with_suffix(".blobs")
            if blobs.stat().st_size != meta["blob_bytes"]:
                return None
            products = PackedProducts(map_file(blobs), arrays["starts"], arrays["ends"], asins)
        else:
            products = meta["products"]
            if [p["asin"] for p in products] != asins:
                return None
        ranged = arrays["ranged"].tolist()
        ranges = {asins[i]: (lo, hi) for i, lo, hi in zip(ranged, *arrays["ranged_bounds"].T.tolist())}
        with no_gc():
            cat = Catalogue(products=products, prices=dict(zip(asins, prices)), setting=meta["setting"],
                            seed=meta["seed"], sources=meta["sources"],
                            goal_positions={k: arrays[f"goals_{k}"].tolist() for k in GOAL_FIELDS}, ranges=ranges)
        cat._nouns = {name: tuple(nouns) for name, nouns in meta["nouns"]}
    except Exception:  # a torn, foreign or mismatched file is rebuilt, never trusted
        return None
    return cat


def _write_cache(path: Path, cat: Catalogue) -> None:
    asins = cat.asins
    position = {a: i for i, a in enumerate(asins)}
    meta = {"format": CACHE_FORMAT, "setting": cat.setting, "seed": cat.seed, "sources": cat.sources,
            "packed": cat.packed, "nouns": [[name, list(nouns)] for name, nouns in getattr(cat, "_nouns", {}).items()]}
    arrays = {"prices": np.array([cat.prices[a] for a in asins], dtype=np.float64),
              "ranged": np.array([position[a] for a in cat.ranges], dtype=np.int64),
              "ranged_bounds": np.array(list(cat.ranges.values()), dtype=np.float64).reshape(-1, 2)}
    arrays.update({f"goals_{k}": np.array(v, dtype=np.int64) for k, v in cat.goal_positions.items()})
    # ASINs as a fixed-width unicode array (1.18M of them load ten times faster than from JSON), unless one does
    # not survive that (numpy drops trailing NULs).
    packed_asins = np.array(asins, dtype=str)
    if packed_asins.tolist() == asins and packed_asins.dtype.itemsize <= 64 * 4:
        arrays["asins"] = packed_asins
    else:
        meta["asins"] = asins
    if cat.packed:
        if not isinstance(cat.products.buffer, mmap.mmap):
            return  # the blobs could not be written beside the cache; nothing to point at
        meta["blob_bytes"] = len(cat.products.buffer)
        arrays.update(starts=np.asarray(cat.products.starts), ends=np.asarray(cat.products.ends))
    else:
        meta["products"] = cat.products
    write_npz(path, meta, arrays)
