"""Reading and cleaning raw WebShop product records, as upstream's ``load_products`` does per product
(shared/docs/webshop.md §2.5): streaming JSON, dropped keys, prices, options, attributes and instructions.
"""

from __future__ import annotations

import gc
import random
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import ijson

DEFAULT_PRICE = 100.0
GOAL_FIELDS = {"synthetic": "instruction_text", "human": "instructions"}


class CatalogueError(ValueError):
    """A catalogue input is malformed; the message names the file and the product."""


def carries(product: dict, kind: str) -> bool:
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


# --------------------------------------------------------------------------------------------- streaming
def iter_products(path: str | Path) -> Iterator[dict]:
    """Stream the elements of a top-level JSON array (numbers as float), one dict at a time."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
        if not head.startswith(b"["):
            raise CatalogueError(f"{path}: not a valid JSON array of products (it does not start with '[')")
        f.seek(0)
        yield from iter_records(f, str(path))


def iter_records(stream: BinaryIO, label: str) -> Iterator[dict]:
    """The product dicts of a JSON array read from `stream` (numbers as float); errors name `label`."""
    try:
        for i, obj in enumerate(ijson.items(stream, "item", use_float=True)):
            if not isinstance(obj, dict):
                raise CatalogueError(f"{label}: element {i} is a {type(obj).__name__}, expected a product object")
            yield obj
    except ijson.JSONError as e:
        raise CatalogueError(f"{label}: not a valid JSON array of products ({e})") from e


def load_mapping(path: str | Path | None) -> dict:
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


@contextmanager
def no_gc():
    # Millions of new dicts trigger the cyclic GC over and over; none of them form cycles worth collecting.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
