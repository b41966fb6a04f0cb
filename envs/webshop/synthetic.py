"""Synthetic WebShop catalogue files in the raw upstream format, for streaming tests and load benchmarks.

The products are random but shaped like the real scrape (same keys, including the ones the loader drops, about the
same 4.6 KB per record, ranged and missing prices, options with null groups, the odd bad ASIN and duplicate), so a
loader that handles these handles the 5.5 GB ``items_shuffle.json`` the same way, and timings carry over.

Words follow a Zipf law over a vocabulary of 300,000 (70 common product words, then made-up words), as text does:
a few words are in many documents, most words in few. Tuned so that, as on the real 1k catalogue, the commonest
term is in about half the documents; a goal query then matches anywhere from a few to most products. With the
earlier ~70-word uniform vocabulary every query matched every product, and search timings (which grow with the
documents a query's terms occur in) meant nothing.
"""

from __future__ import annotations

import itertools
import json
import random
from functools import lru_cache
from pathlib import Path

import numpy as np

_COMMON = (
    "organic soft cotton steel wireless portable leather waterproof stainless natural vegan gluten free compact "
    "classic modern premium heavy duty lightweight rechargeable bluetooth ceramic wooden glass silicone bamboo "
    "shampoo pillow table lamp charger cable headphones jacket dress shoes socks coffee tea chocolate snack "
    "serum cream brush mirror chair sofa rug curtain blanket speaker camera tripod keyboard mouse bottle"
).split()
_WORDS = _COMMON  # attributes and category paths use the common words
# Bump when the generator's output changes (benchmarks name their cached input files with it).
GENERATOR_VERSION = 2
VOCABULARY_SIZE = 300_000
# The word of rank r is drawn with probability ~ 1 / (r + ZIPF_Q) (Mandelbrot's form of Zipf's law, exponent 1).
ZIPF_Q = 50.0
_CATEGORIES = ("beauty", "electronics", "garden", "fashion", "grocery")
_COLOURS = ("black", "navy blue", "white", "light grey", "rose gold", "standard", "multicolor")
_SIZES = ("small", "medium", "large", "x-large", '28" x 28"', "pack of 12")


@lru_cache(maxsize=1)
def vocabulary() -> list[str]:
    """Words by rank: the common words first, then distinct made-up words of one to three syllables
    (deterministic)."""
    onsets = "b c d f g h j k l m n p r s t v w z br ch cl cr dr fl gr pl pr sh st th tr".split()
    vowels = "a e i o u ai ea ee oo ou".split()
    codas = ["", "", "n", "r", "l", "st", "x", "m", "nd", "sk"]
    syllables = [o + v + c for o, v, c in itertools.product(onsets, vowels, codas)]
    g = np.random.Generator(np.random.PCG64(20261130))
    n = VOCABULARY_SIZE * 4 // 3  # one-syllable draws repeat; the rest almost never do
    a, b, c = (np.array(syllables, dtype=object)[g.integers(len(syllables), size=n)] for _ in range(3))
    length = g.choice([1, 2, 2, 3], size=n)
    made_up = np.where(length == 1, a, np.where(length == 2, a + b, a + b + c)).tolist()
    words = list(dict.fromkeys([*_COMMON, *made_up]))[:VOCABULARY_SIZE]
    if len(words) < VOCABULARY_SIZE:
        raise RuntimeError(f"only {len(words)} distinct synthetic words")
    return words


class _Words:
    """Zipf-distributed words for one product, drawn in one vectorised batch (from a generator seeded by ``rng``,
    so the catalogue still depends on the seed alone)."""

    def __init__(self, rng: random.Random, n: int):
        words = vocabulary()
        g = np.random.Generator(np.random.PCG64(rng.getrandbits(64)))
        # Inverse of the continuous Zipf-Mandelbrot CDF (s = 1): rank = q * ((V + q) / q) ** u - q.
        ranks = ZIPF_Q * ((len(words) + ZIPF_Q) / ZIPF_Q) ** g.random(n) - ZIPF_Q
        self.pool = list(map(words.__getitem__, ranks.astype(np.int64).clip(0, len(words) - 1).tolist()))
        self.at = 0

    def take(self, n: int) -> str:
        self.at += n
        return " ".join(self.pool[self.at - n:self.at])


def synthetic_product(rng: random.Random, i: int, text_scale: float = 1.0) -> dict:
    """One raw product record (the shape ``items_shuffle.json`` entries have before loading). ``text_scale``
    shortens the description, notes and bullet points (e.g. 0.1 for a catalogue with the full scrape's number of
    products, goals and terms that is quick to build, to time what depends on counts rather than bytes)."""
    asin = f"B{i:09d}"
    r = rng.random()
    if r < 0.09:
        pricing = ""
    elif r < 0.18:
        low = round(rng.uniform(1, 500), 2)
        pricing = f"${low} - ${round(low + rng.uniform(1, 100), 2)}"
    else:
        pricing = f"${round(rng.uniform(1, 900), 2)}"
    options: dict | str = ""
    if rng.random() < 0.45:
        options = {"Color": [{"value": c.title(), "image": f"https://img/{asin}/{j}.jpg"}
                             for j, c in enumerate(rng.sample(_COLOURS, rng.randint(1, 4)))],
                   "Size": [{"value": s} for s in rng.sample(_SIZES, rng.randint(1, 3))]}
        if rng.random() < 0.2:
            options["Style"] = None  # upstream has null option groups; the loader skips them
    n_name, n_desc = rng.randint(6, 18), rng.randint(120, 420)
    n_bullets = [rng.randint(10, 40) for _ in range(rng.randint(1, 8))]
    if text_scale != 1.0:
        n_desc, n_bullets = max(1, round(n_desc * text_scale)), [max(1, round(n * text_scale)) for n in n_bullets]
    n_notes = max(1, round(60 * text_scale))
    words = _Words(rng, n_name + n_desc + 1 + n_notes + sum(n_bullets) + 2)
    return {
        "name": words.take(n_name).title(),
        "full_description": words.take(n_desc),
        "pricing": pricing,
        "list_price": pricing,
        "images": [f"https://img/{asin}/main.jpg", f"https://img/{asin}/1.jpg"],
        "product_category": " › ".join(w.title() for w in rng.sample(_WORDS, 4)),
        "brand": words.take(1), "brand_url": "https://brand/x",
        "product_information": {"Item Weight": "1 pound", "ASIN": asin, "Notes": words.take(n_notes)},
        "average_rating": round(rng.uniform(1, 5), 1),
        "total_reviews": rng.randint(0, 5000),
        "small_description": [words.take(n) for n in n_bullets],
        "customization_options": options,
        "asin": asin,
        "category": rng.choice(_CATEGORIES),
        "query": words.take(2).title() + " ",
        "page": rng.randint(1, 400),
    }


def write_synthetic_catalogue(path: str | Path, n: int, *, seed: int = 0, indent: int | None = None,
                              text_scale: float = 1.0) -> Path:
    """Write ``n`` synthetic raw products as one JSON array to ``path`` (streamed, so ``n`` may be millions).

    Adds two records the loader must skip (ASIN 'nan' and a duplicate). Returns the path. ``text_scale``: see
    :func:`synthetic_product`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i in range(n):
            if i:
                f.write(",\n" if indent is not None else ", ")
            f.write(json.dumps(synthetic_product(rng, i, text_scale), ensure_ascii=False, indent=indent))
        f.write(", " + json.dumps({**synthetic_product(rng, n, text_scale), "asin": "nan"}))
        f.write(", " + json.dumps(synthetic_product(random.Random(seed), 0, text_scale)))  # duplicate of product 0
        f.write("]")
    return path


def write_synthetic_attributes(path: str | Path, n: int, *, seed: int = 0, instructed: float = 0.4) -> Path:
    """Write an ``items_ins_v2``-shaped file for the first ``n`` synthetic products (a share with instructions)."""
    rng = random.Random(seed + 1)
    out = {}
    for i in range(n):
        attrs = rng.sample(_WORDS, 3)
        entry: dict = {"attributes": attrs}
        if rng.random() < instructed:
            entry["instruction"] = f"i want {_Words(rng, 6).take(6)}"
            entry["instruction_attributes"] = attrs[:2]
        out[f"B{i:09d}"] = entry
    Path(path).write_text(json.dumps(out), encoding="utf-8")
    return Path(path)

