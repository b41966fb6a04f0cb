"""In-process BM25 product search standing in for upstream's pyserini/Lucene index (no JVM).

Documents are what upstream indexes (shared/docs/webshop.md §2.8): the lowercased title, description, first bullet
point and option text ("name: v1, v2, and name2: ..."). Analysis imitates Anserini's default English analyzer: a
regex approximation of Lucene's StandardTokenizer (UAX#29 word breaks), possessive "'s" removal, Lucene's 33 English
stopwords and the Porter stemmer in the variant Lucene's PorterStemFilter implements (NLTK's MARTIN_EXTENSIONS).
Scoring is Lucene's BM25 with pyserini's defaults k1=0.9, b=0.4, computed in float32 like Lucene, including its
lossy one-byte document-length norms (which bm25s' exact lengths lack); the per-(term, document) scores are loaded
into a bm25s index, which does the retrieval. Repeated query terms count repeatedly, as in Anserini's bag-of-words
query. Ties go to the smaller ASIN, as Anserini sorts hits by score, then by document id string.
"""

from __future__ import annotations

import threading

import bm25s
import numpy as np

from .analysis import STOPWORDS, analyze, analyze_bag, document_text  # noqa: F401  (public re-exports)
from .bm25_index import (  # noqa: F401  (public re-exports)
    B, INDEX_FORMAT, K1, _load_index, _save_index, asin_rank, build_index, lucene_norm_length,
)
from .catalogue import Catalogue

SEARCH_RETURN_N = 50


class SearchEngine:
    """BM25 over a catalogue. ``search(query, k)`` returns up to ``k`` ASINs, best first (empty for a query with no
    indexed term). Build once per catalogue: :func:`search_engine_for` memoises it in-process, and a catalogue
    loaded through ``load_catalogue`` with its cache on also keeps the index on disk (memory-mapped on reload)."""

    def __init__(self, catalogue: Catalogue, *, use_cache: bool = True):
        self.catalogue = catalogue
        self.asins = list(catalogue.asins)
        folder = catalogue.cache_path("search", INDEX_FORMAT) if use_cache else None
        loaded = _load_index(folder, len(self.asins)) if folder is not None else None
        if loaded is None:
            vocab, matrix = build_index(catalogue.products)
            loaded = vocab, matrix, asin_rank(self.asins)
            if folder is not None:
                _save_index(folder, *loaded)
        self.vocab, matrix, self._asin_rank = loaded  # the rank of each ASIN in sorted order breaks score ties
        self._bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
        # bm25s only sums precomputed per-(term, doc) scores at query time; we give it Lucene's.
        self._bm25.scores = matrix
        self._bm25.nonoccurrence_array = None  # what bm25s itself sets for the "lucene" variant
        self._lock = threading.Lock()
    def __repr__(self) -> str:
        return f"SearchEngine({len(self.asins)} products, {len(self.vocab)} terms)"

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every product for ``query`` (catalogue order)."""
        ids = [self.vocab[t] for t in analyze_bag(query) if t in self.vocab]
        if not ids:
            return np.zeros(len(self.asins), dtype=np.float32)
        with self._lock:
            return self._bm25.get_scores_from_ids(ids)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """Top-``k`` ASINs for ``query``: highest score first, ties by ASIN; only products that match at least one
        query term."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        s = self.scores(query)
        hits = np.flatnonzero(s > 0)
        if len(hits) > k:
            # Keep every doc tied with the k-th score so the tie-break below sees all of them.
            kth = np.partition(s[hits], len(hits) - k)[len(hits) - k]
            hits = hits[s[hits] >= kth]
        order = hits[np.lexsort((self._asin_rank[hits], -s[hits]))][:k]
        return [self.asins[i] for i in order]


_engines: dict[int, SearchEngine] = {}
_engines_lock = threading.Lock()


def search_engine_for(catalogue: Catalogue) -> SearchEngine:
    """The shared :class:`SearchEngine` of a catalogue (built on first use)."""
    with _engines_lock:
        eng = _engines.get(id(catalogue))
        if eng is None or eng.catalogue is not catalogue:
            eng = _engines[id(catalogue)] = SearchEngine(catalogue)
        return eng
