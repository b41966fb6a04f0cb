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
import io
import json
import mmap
import os
import pickle
import random
import re
import tempfile
from contextlib import contextmanager
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

import ijson


from hero_gym import data as hg_data

from .store import BlobWriter, PackedIndex, PackedProducts, map_file
from .text import known_nouns, remember_nouns, title_nouns, title_nouns_many

# Bump when the prepared form changes, so stale caches are never read.
CACHE_FORMAT = 2
DEFAULT_PRICE = 100.0
CACHE_ENV_VAR = "HERO_GYM_CACHE"
# Up to this many products, every title's nouns are tagged at build time and cached with the catalogue (1k: ~2 s).
# Above it (the 1.18M full scrape would take ~20 min), titles are tagged on first purchase (a few ms) and memoised.
NOUN_PRECOMPUTE_ALL_MAX = 50_000
# Product files at least this big are kept packed (one pickled blob per product, see store.py), not as dicts.
PACKED_MIN_BYTES = 256 << 20
GOAL_FIELDS = {"synthetic": "instruction_text", "human": "instructions"}


def _carries(product: dict, kind: str) -> bool:
    # Upstream skips a product for synthetic goals only when its instruction is missing or None.
    v = product.get(GOAL_FIELDS[kind])
    return v is not None if kind == "synthetic" else bool(v)

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
    by_asin: Mapping[str, dict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.products, PackedProducts):
            self.by_asin = PackedIndex(self.products)
        else:
            self.by_asin = {p["asin"]: p for p in self.products}
        if self.goal_positions is None:
            self.goal_positions = {k: [i for i, p in enumerate(self.products) if _carries(p, k)]
                                   for k in GOAL_FIELDS}

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


# --------------------------------------------------------------------------------------------- streaming
def iter_products(path: str | Path) -> Iterator[dict]:
    """Stream the elements of a top-level JSON array (numbers as float), one dict at a time."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
        if not head.startswith(b"["):
            raise CatalogueError(f"{path}: not a valid JSON array of products (it does not start with '[')")
        f.seek(0)
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


def iter_prepared(raw: Iterable[dict], attrs: dict, human: dict, num_products: int | None = None,
                  source: str = "?") -> Iterator[dict]:
    """Clean and deduplicate raw records in order: ASIN 'nan', ASINs over 10 characters and repeats are skipped."""
    seen: set[str] = set()
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
        yield prepare_product(p, attrs, human)


def prepare_products(raw: Iterable[dict], attrs: dict, human: dict, num_products: int | None = None,
                     source: str = "?") -> list[dict]:
    """:func:`iter_prepared` as a list."""
    return list(iter_prepared(raw, attrs, human, num_products, source))


def draw_prices(pricings: Iterable[tuple[str, list[float]]], seed: int) -> dict[str, float]:
    """Selling price per ASIN from (asin, pricing) pairs in catalogue order: the single listed price, or for a
    range a seeded uniform draw inside it."""
    rng = random.Random(seed)
    return {asin: pricing[0] if len(pricing) == 1 else rng.uniform(pricing[0], pricing[1])
            for asin, pricing in pricings}


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
    memoised in-process and pickled under ``cache_dir`` (default ``$HERO_GYM_CACHE/webshop`` or
    ``~/.cache/hero_gym/webshop``); ``use_cache=False`` rebuilds from the inputs and stores nothing. ``packed``
    keeps products as pickled blobs decoded on access (default: for product files of 256 MiB or more, i.e. the
    full scrape). Callers must treat the catalogue as read-only: envs share it.
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
    cache_file = Path(cache_dir or default_cache_dir()) / f"catalogue-{key}.pkl"
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


def _open_blob_sink(blob_path: Path | None):
    """Where packed products go: a temp file beside the cache (memory-mapped afterwards), else memory."""
    if blob_path is not None:
        try:
            blob_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=blob_path.parent, prefix=blob_path.name, suffix=".tmp")
            return os.fdopen(fd, "wb"), Path(tmp)
        except OSError:
            pass  # unwritable cache dir: keep the blobs in memory
    return io.BytesIO(), None


def _build(setting, seed, num_products, items, attrs, human, packed=False, blob_path=None) -> Catalogue:
    sources = {"items": str(items), "attrs": str(attrs), "human_ins": str(human)}
    with _no_gc():
        attr_map = _load_mapping(attrs)
        human_map = json.loads(human.read_text(encoding="utf-8")) if human is not None else {}
        prepared = iter_prepared(iter_products(items), attr_map, human_map, num_products, str(items))
        if packed:
            products, pairs, goal_positions = _pack(prepared, blob_path)
        else:
            products, goal_positions = list(prepared), None
            pairs = ((p["asin"], p["pricing"]) for p in products)
        del attr_map
        if not products:
            raise CatalogueError(f"{items}: no usable products")
        cat = Catalogue(products=products, prices=draw_prices(pairs, seed), setting=setting, seed=seed,
                        sources=sources, goal_positions=goal_positions)
    names = sorted({p["name"] for p in products}) if len(products) <= NOUN_PRECOMPUTE_ALL_MAX else []
    nouns = {n: known_nouns(n) for n in names}
    todo = [n for n, v in nouns.items() if v is None]  # another seed's build may have tagged them already
    nouns.update(zip(todo, title_nouns_many(todo)))
    cat._nouns = nouns
    return cat


def _pack(prepared: Iterator[dict], blob_path: Path | None):
    sink, tmp = _open_blob_sink(blob_path)
    writer = BlobWriter(sink)
    asins, pricings, goal_positions = [], [], {k: [] for k in GOAL_FIELDS}
    try:
        for i, p in enumerate(prepared):
            writer.add(p)
            asins.append(p["asin"])
            pricings.append(p["pricing"])
            for kind in GOAL_FIELDS:
                if _carries(p, kind):
                    goal_positions[kind].append(i)
        if tmp is None:
            buffer = sink.getbuffer()
        else:
            sink.close()
            os.replace(tmp, blob_path)
            buffer = map_file(blob_path) if asins else b""
    finally:
        if tmp is not None and tmp.exists():
            sink.close()
            tmp.unlink()
    return PackedProducts(buffer, writer.offsets_array(), asins), zip(asins, pricings), goal_positions


def _read_cache(path: Path) -> Catalogue | None:
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f, _no_gc():
            state = pickle.load(f)
        if state.get("format") != CACHE_FORMAT:
            return None
        products = state["products"]
        if products is None:  # packed: the products live in the memory-mapped blob file beside it
            products = PackedProducts(map_file(path.with_suffix(".blobs")), state["offsets"], state["asins"])
    except Exception:  # a torn, foreign or mismatched file is rebuilt, never trusted
        return None
    with _no_gc():
        cat = Catalogue(products=products, prices=state["prices"], setting=state["setting"],
                        seed=state["seed"], sources=state["sources"], goal_positions=state["goal_positions"])
    cat._nouns = state["nouns"]
    return cat


def _write_cache(path: Path, cat: Catalogue) -> None:
    state = {"format": CACHE_FORMAT, "prices": cat.prices, "setting": cat.setting, "seed": cat.seed,
             "sources": cat.sources, "goal_positions": cat.goal_positions, "nouns": getattr(cat, "_nouns", {})}
    if cat.packed:
        if not isinstance(cat.products.buffer, mmap.mmap):
            return  # the blobs could not be written beside the cache; nothing to point at
        state.update(products=None, offsets=cat.products.offsets, asins=cat.products.asins)
    else:
        state["products"] = cat.products
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # atomic: concurrent loaders see the old file or the whole new one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only or full cache dir only costs speed
