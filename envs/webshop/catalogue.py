"""The WebShop product catalogue: streaming load of the raw scrape, upstream's product cleaning, prices, and a
prepared-catalogue cache on disk.

Semantics follow WebShop's ``load_products`` (see shared/docs/webshop.md §2.5) with one documented deviation: the
price of a product listed with a range ("$a - $b") is drawn uniformly from ``random.Random(seed)`` in catalogue
order, where upstream draws it from the unseeded global RNG (so upstream prices differ from run to run).

The raw file is read with ijson (a C JSON event parser), one product at a time, so the 5.5 GB full scrape never sits
in memory as text. The prepared products, prices and title nouns are pickled under a cache key made of the
inputs' paths, sizes and mtimes plus every parameter that changes the result.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import random
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

import ijson

from hero_gym import data as hg_data

from .text import known_nouns, remember_nouns, title_nouns, title_nouns_many

# Bump when the prepared form changes, so stale caches are never read.
CACHE_FORMAT = 1
DEFAULT_PRICE = 100.0
CACHE_ENV_VAR = "HERO_GYM_CACHE"
# Above this many products, nouns are tagged up front only for goal products (tagging all 1.18M titles would take
# ~20 min on 2 cores); other titles are tagged on first purchase (~2 ms) and memoised.
NOUN_PRECOMPUTE_ALL_MAX = 50_000

# Keys upstream deletes at load time (never read by the env).
_DROPPED_KEYS = (
    "product_information", "brand", "brand_url", "list_price", "availability_quantity", "availability_status",
    "total_reviews", "total_answered_questions", "seller_id", "seller_name", "fulfilled_by_amazon",
    "fast_track_message", "aplus_present", "small_description_old",
)
_NON_PRICE_CHARS = re.compile(r"[^\d.]")

_SETTINGS = {
    # setting -> (dataset, items, attributes, human instructions)
    "1k": ("webshop-1k", "webshop/items_shuffle_1000.json", "webshop/items_ins_v2_1000.json",
           "webshop/items_human_ins_subset_1k.json"),
    "full": ("webshop-full", "webshop/items_shuffle.json", "webshop/items_ins_v2.json",
             "webshop/items_human_ins.json"),
}


class CatalogueError(ValueError):
    """A catalogue input is malformed; the message names the file and the product."""


@dataclass
class Catalogue:
    """Prepared products (upstream field names), an ASIN index and the price each product sells at."""

    products: list[dict]
    prices: dict[str, float]
    setting: str = "1k"
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    by_asin: dict[str, dict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_asin = {p["asin"]: p for p in self.products}

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


# --------------------------------------------------------------------------------------------- streaming
def iter_products(path: str | Path) -> Iterator[dict]:
    """Stream the elements of a top-level JSON array (numbers as float), one dict at a time."""
    with open(path, "rb") as f:
        try:
            for i, obj in enumerate(ijson.items(f, "item", use_float=True)):
                if not isinstance(obj, dict):
                    raise CatalogueError(f"{path}: element {i} is a {type(obj).__name__}, expected a product object")
                yield obj
        except ijson.JSONError as e:
            raise CatalogueError(f"{path}: not a valid JSON array of products ({e})") from e


def _load_mapping(path: str | Path | None) -> dict:
    """Stream a top-level JSON object keyed by ASIN (items_ins_v2 is 186 MB in the full setting)."""
    if path is None:
        return {}
    out = {}
    with open(path, "rb") as f:
        try:
            for k, v in ijson.kvitems(f, "", use_float=True):
                out[k] = v
        except ijson.JSONError as e:
            raise CatalogueError(f"{path}: not a valid JSON object keyed by ASIN ({e})") from e
    return out


# --------------------------------------------------------------------------------------------- cleaning
def parse_pricing(pricing: Any, asin: str = "?") -> tuple[list[float], str]:
    """Upstream price parsing: '' or missing -> [100.0] '$100.0'; '$a' -> [a] '$a'; '$a - $b' -> [a, b] '$a to $b'."""
    if not pricing:
        return [DEFAULT_PRICE], f"${DEFAULT_PRICE}"
    if not isinstance(pricing, str):
        raise CatalogueError(f"product {asin}: pricing must be a string like '$12.99', got {pricing!r}")
    values = []
    for piece in pricing.split("$")[1:]:
        digits = _NON_PRICE_CHARS.sub("", piece)
        try:
            values.append(float(digits))
        except ValueError:
            raise CatalogueError(f"product {asin}: cannot parse price {piece!r} in {pricing!r}") from None
    if not values:
        raise CatalogueError(f"product {asin}: pricing {pricing!r} holds no '$' amount")
    if len(values) == 1:
        return values, f"${values[0]}"
    return values[:2], f"${values[0]} to ${values[1]}"


def parse_options(raw: Any) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Option groups (lowercased names; values stripped, '/' -> ' | ', lowercased) and value -> image."""
    options: dict[str, list[str]] = {}
    images: dict[str, Any] = {}
    if not raw:
        return options, images
    for name, contents in raw.items():
        if contents is None:
            continue
        values = []
        for c in contents:
            v = c["value"].strip().replace("/", " | ").lower()
            values.append(v)
            images[v] = c.get("image")
        options[name.lower()] = values
    return options, images


def prepare_product(p: dict, attrs: dict, human: dict) -> dict:
    """Turn one raw record into the env's product dict, in place (upstream ``load_products`` per product)."""
    asin = p["asin"]
    for k in _DROPPED_KEYS:
        p.pop(k, None)
    p["Title"] = p["name"]
    p["Description"] = p["full_description"]
    p["Reviews"] = []
    p["Rating"] = "N.A."
    bullets = p["small_description"]
    p["BulletPoints"] = bullets if isinstance(bullets, list) else [bullets]
    p["pricing"], p["Price"] = parse_pricing(p.get("pricing"), asin)
    try:
        p["options"], p["option_to_image"] = parse_options(p.get("customization_options"))
    except (AttributeError, KeyError, TypeError) as e:
        raise CatalogueError(f"product {asin}: malformed customization_options ({e!r})") from None
    entry = attrs.get(asin) or {}
    p["Attributes"] = entry["attributes"] if "attributes" in entry else ["DUMMY_ATTR"]
    # Upstream sets either these (synthetic goals) or `instructions` (human goals); we set both so one prepared
    # catalogue serves both goal kinds.
    p["instruction_text"] = entry.get("instruction")
    p["instruction_attributes"] = entry.get("instruction_attributes")
    if asin in human:
        p["instructions"] = human[asin]
    images = p.get("images") or [None]
    p["MainImage"] = images[0]
    p["query"] = p["query"].lower().strip()
    return p


_REQUIRED = ("asin", "name", "full_description", "small_description", "query", "category", "product_category")


def prepare_products(raw: Iterable[dict], attrs: dict, human: dict, num_products: int | None = None,
                     source: str = "?") -> list[dict]:
    """Clean and deduplicate raw records in order: ASIN 'nan', ASINs over 10 characters and repeats are skipped."""
    seen: set[str] = set()
    out = []
    for i, p in enumerate(raw):
        if num_products is not None and i >= num_products:
            break  # upstream slices the (pre-shuffled) list before filtering
        missing = [k for k in _REQUIRED if k not in p]
        if missing:
            raise CatalogueError(f"{source}: product #{i} (asin {p.get('asin')!r}) lacks {', '.join(missing)}")
        asin = p["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        out.append(prepare_product(p, attrs, human))
    return out


def draw_prices(products: list[dict], seed: int) -> dict[str, float]:
    """Selling price per ASIN: the single listed price, or for a range a seeded uniform draw inside it."""
    rng = random.Random(seed)
    prices = {}
    for p in products:
        pricing = p["pricing"]
        prices[p["asin"]] = pricing[0] if len(pricing) == 1 else rng.uniform(pricing[0], pricing[1])
    return prices


# --------------------------------------------------------------------------------------------- loading
@contextmanager
def _no_gc():
    # Millions of new dicts trigger the cyclic GC over and over; none of them form cycles worth collecting.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        except hg_data.DataError:
            if required:
                raise
            return None

    items = pick(items_path, items_rel, True)
    # With user-supplied products, never silently pair them with the bundled 1k attribute files.
    own = items_path is not None
    attrs = pick(attrs_path, attrs_rel, True) if not own or attrs_path is not None else None
    human = pick(human_ins_path, human_rel, False) if not own or human_ins_path is not None else None
    return items, attrs, human


def _cache_key(setting, seed, num_products, paths) -> str:
    h = hashlib.sha256(f"v{CACHE_FORMAT}|{setting}|{seed}|{num_products}".encode())
    for p in paths:
        if p is None:
            h.update(b"|-")
            continue
        st = p.stat()
        h.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


_loaded: dict[str, Catalogue] = {}


def load_catalogue(setting: str = "1k", *, seed: int = 0, items_path=None, attrs_path=None, human_ins_path=None,
                   cache_dir=None, num_products: int | None = None, use_cache: bool = True) -> Catalogue:
    """Load (or reuse) the prepared WebShop catalogue.

    ``setting`` "1k" reads the bundled 1,000-product files through :mod:`hero_gym.data`; "full" the 1.18M-product
    scrape (``items_path``/``attrs_path``/``human_ins_path`` override either). ``seed`` fixes the prices of ranged
    products; ``num_products`` keeps only the first N raw records, as upstream's ``num_products``. The result is
    memoised in-process and pickled under ``cache_dir`` (default ``$HERO_GYM_CACHE/webshop`` or
    ``~/.cache/hero_gym/webshop``); ``use_cache=False`` rebuilds from the inputs and stores nothing. Callers must
    treat the catalogue as read-only: envs share it.
    """
    if setting not in _SETTINGS:
        raise ValueError(f"unknown WebShop setting {setting!r}; expected one of {sorted(_SETTINGS)}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if num_products is not None and (not isinstance(num_products, int) or num_products < 1):
        raise ValueError(f"num_products must be a positive int or None, got {num_products!r}")
    items, attrs, human = _resolve(setting, items_path, attrs_path, human_ins_path)
    key = _cache_key(setting, seed, num_products, (items, attrs, human))
    if use_cache and key in _loaded:
        return _loaded[key]
    cache_file = Path(cache_dir or default_cache_dir()) / f"catalogue-{key}.pkl"
    cat = _read_cache(cache_file) if use_cache else None
    if cat is None:
        cat = _build(setting, seed, num_products, items, attrs, human)
        if use_cache:
            _write_cache(cache_file, cat)
    remember_nouns(cat.__dict__.pop("_nouns", {}))
    if use_cache:
        _loaded[key] = cat
    return cat


def _build(setting, seed, num_products, items, attrs, human) -> Catalogue:
    with _no_gc():
        attr_map = _load_mapping(attrs)
        human_map = json.loads(human.read_text(encoding="utf-8")) if human is not None else {}
        products = prepare_products(iter_products(items), attr_map, human_map, num_products, str(items))
        del attr_map
    if not products:
        raise CatalogueError(f"{items}: no usable products")
    cat = Catalogue(products=products, prices=draw_prices(products, seed), setting=setting, seed=seed,
                    sources={"items": str(items), "attrs": str(attrs), "human_ins": str(human)})
    if len(products) <= NOUN_PRECOMPUTE_ALL_MAX:
        names = sorted({p["name"] for p in products})
    else:
        names = sorted({p["name"] for p in products if p.get("instructions") or p.get("instruction_text")})
    nouns = {n: known_nouns(n) for n in names}
    todo = [n for n, v in nouns.items() if v is None]  # another seed's build may have tagged them already
    nouns.update(zip(todo, title_nouns_many(todo)))
    cat._nouns = nouns
    return cat


def _read_cache(path: Path) -> Catalogue | None:
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f, _no_gc():
            state = pickle.load(f)
        if state.get("format") != CACHE_FORMAT:
            return None
    except Exception:  # a torn or foreign file is rebuilt, never trusted
        return None
    cat = Catalogue(products=state["products"], prices=state["prices"], setting=state["setting"],
                    seed=state["seed"], sources=state["sources"])
    cat._nouns = state["nouns"]
    return cat


def _write_cache(path: Path, cat: Catalogue) -> None:
    state = {"format": CACHE_FORMAT, "products": cat.products, "prices": cat.prices, "setting": cat.setting,
             "seed": cat.seed, "sources": cat.sources, "nouns": getattr(cat, "_nouns", {})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: concurrent loaders see the old file or the whole new one
    except OSError:
        pass  # a read-only cache dir only costs speed
