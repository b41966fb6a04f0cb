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

import os
import pickle
import re
import shutil
import tempfile
import threading
from pathlib import Path

import bm25s
import numpy as np
import regex
from bm25s.stopwords import STOPWORDS_EN
from nltk.stem.porter import PorterStemmer

from .catalogue import Catalogue

K1, B = 0.9, 0.4
SEARCH_RETURN_N = 50
INDEX_FORMAT = 1  # bump when analysis or scoring changes, so cached indexes are rebuilt
# Lucene's EnglishAnalyzer stop set (bm25s ships exactly these 33 words).
STOPWORDS = frozenset(STOPWORDS_EN)

# A regex approximation of UAX#29 word breaks as Lucene's StandardTokenizer applies them: letters join across
# ':', '.', '·', apostrophes (WB6-7); digits across '.', ',', ';', '⁄', apostrophes (WB11-12), fullwidth forms
# too; letters, digits, '_' and combining marks join directly; each Han or Hiragana character is a token; emoji
# (with variation selectors, modifiers and ZWJ sequences) are tokens; everything else (space, '-', '/', '"', '&',
# ...) breaks.
_W = r"[[\p{L}\p{Nd}\p{M}_]--[\p{Han}\p{Hiragana}]]"
# Extended_Pictographic as Unicode's emoji-data defines it, which Lucene's emoji rule uses. The `regex` module's
# property only covers the emoji proper, so the reserved/non-emoji pictographs are listed here (2600-27BF and the
# 1F000 planes): '★' (2605) is a token for Lucene, '☆' (2606) and '✿' (273F) are not.
_PICT = (r"[\p{Extended_Pictographic}\u2600-\u2605\u2607-\u2612\u2614-\u2685\u2690-\u2705\u2708-\u2712"
         r"\u2714\u2716\u271D\u2721\u2728\u2733\u2734\u2744\u2747\u274C\u274E\u2753-\u2755\u2757"
         r"\u2763-\u2767\u2795-\u2797\u27A1\u27B0\u27BF\U0001F000-\U0001F0FF\U0001F10D-\U0001F10F\U0001F12F"
         r"\U0001F16C-\U0001F171\U0001F17E\U0001F17F\U0001F18E\U0001F191-\U0001F19A\U0001F1AD-\U0001F1E5"
         r"\U0001F201-\U0001F20F\U0001F21A\U0001F22F\U0001F232-\U0001F23A\U0001F23C-\U0001F23F"
         r"\U0001F249-\U0001F3FA\U0001F400-\U0001F53D\U0001F546-\U0001F64F\U0001F680-\U0001F6FF"
         r"\U0001F774-\U0001F77F\U0001F7D5-\U0001F7FF\U0001F80C-\U0001F80F\U0001F848-\U0001F84F"
         r"\U0001F85A-\U0001F85F\U0001F888-\U0001F88F\U0001F8AE-\U0001F8FF\U0001F90C-\U0001F93A"
         r"\U0001F93C-\U0001F945\U0001F947-\U0001FAFF\U0001FC00-\U0001FFFD]")
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hiragana}]\p{M}*"
    rf"|{_PICT}[\uFE0F\p{{Emoji_Modifier}}]*(?:\u200D{_PICT}[\uFE0F\p{{Emoji_Modifier}}]*)*"
    rf"|{_W}+(?:(?:(?<=\p{{L}}\p{{M}}*)[:.'‘’·：](?=\p{{L}})|(?<=\p{{Nd}}\p{{M}}*)[.,;'‘’⁄，；．](?=\p{{Nd}})){_W}+)*",
    regex.V1,
)
_HAS_ALNUM = regex.compile(rf"[\p{{L}}\p{{N}}]|{_PICT}", regex.V1)

# Lucene's PorterStemmer is Martin Porter's reference implementation, with its departures from the 1980 paper
# (e.g. 'technology' -> 'technolog'); NLTK's MARTIN_EXTENSIONS mode is the same algorithm. Snowball's "porter"
# (PyStemmer) follows the paper and disagrees on such words. Words of one or two letters are left alone.
_porter = PorterStemmer(mode=PorterStemmer.MARTIN_EXTENSIONS)
# token -> stem, or '' for a token Lucene would not emit (e.g. only underscores); shared by all engines.
_stems: dict[str, str] = {}
# The same word breaks restricted to ASCII, for the common all-ASCII text: about 5x faster than the general pattern.
_ASCII_TOKEN = re.compile(r"[a-z0-9_]+(?:(?:(?<=[a-z])[:.'](?=[a-z])|(?<=[0-9])[.,;'](?=[0-9]))[a-z0-9_]+)*")
_POSSESSIVES = ("'s", "’s")


def _new_stem(word: str) -> str:
    s = _porter.stem(word, to_lowercase=False) if _HAS_ALNUM.search(word) else ""
    _stems[word] = s
    return s


# A whitespace-free run holding a non-ASCII character. Tokens never span whitespace, so such runs can go through
# the general pattern while the rest of the text takes the ASCII one.
_NON_ASCII_RUN = re.compile(r"\S*[^\x00-\x7f]\S*")


def _term(word: str) -> str:
    """The term a raw token indexes as, or '' if it indexes as nothing (memoised)."""
    st = _stems.get(word)
    if st is None:
        w = word[:-2] if word[-2:] in _POSSESSIVES else word
        st = "" if (not w or w in STOPWORDS) else _stems.get(w)
        if st is None:
            st = _new_stem(w)
        _stems[word] = st
    return st


def _terms(words: list[str]) -> list[str]:
    # map() over the memo runs in C; only unseen tokens take the Python path.
    got = list(map(_stems.get, words))
    if None in got:
        got = [t if t is not None else _term(w) for t, w in zip(got, words)]
    return list(filter(None, got))


def _words_bag(text: str) -> list[str]:
    text = text.lower()
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    odd = _NON_ASCII_RUN.findall(text)
    return _ASCII_TOKEN.findall(_NON_ASCII_RUN.sub(" ", text)) + _TOKEN.findall(" ".join(odd))


def analyze(text: str) -> list[str]:
    """Index/query terms of ``text`` in text order: tokenize, lowercase, drop possessives and stopwords, stem."""
    if not isinstance(text, str):
        raise TypeError(f"text to analyze must be a string, got {type(text).__name__}")
    text = text.lower()
    return _terms(_ASCII_TOKEN.findall(text) if text.isascii() else _TOKEN.findall(text))


def analyze_bag(text: str) -> list[str]:
    """The terms of :func:`analyze` in an order of convenience (BM25 only counts them), found faster."""
    if not isinstance(text, str):
        raise TypeError(f"text to analyze must be a string, got {type(text).__name__}")
    return _terms(_words_bag(text))


def document_text(product: dict) -> str:
    """The text upstream indexes for a product."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullets = product["BulletPoints"]
    first = bullets[0] if bullets else ""
    return " ".join([product["Title"], product["Description"], first, option_text]).lower()


# ------------------------------------------------------------------------------------ Lucene BM25 arithmetic
def _int_to_int4(i: int) -> int:
    # Lucene SmallFloat.longToInt4: 4 significant bits (implicit leading one) plus a shift.
    bits = i.bit_length()
    if bits < 4:
        return i
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_int(e: int) -> int:
    bits, shift = e & 0x07, (e >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_FREE = 255 - _int_to_int4(2**31 - 1)  # lengths below this are stored exactly (24)


def lucene_norm_length(length: int) -> int:
    """The document length Lucene scores with: exact below 24 terms, then rounded down to 4 significant bits."""
    if length < _FREE:
        return length
    return _FREE + _int4_to_int(_int_to_int4(length - _FREE))


def _chunk_postings(docs: list[list[int]], first_doc: int):
    """(term, doc, tf) triples of a few documents (term ids, -1 = no term), sorted by term then doc, and the
    documents' lengths in terms."""
    counts = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    flat = np.fromiter((t for d in docs for t in d), dtype=np.int64, count=int(counts.sum()))
    local = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
    keep = flat >= 0
    flat, local = flat[keep], local[keep]
    lengths = np.bincount(local, minlength=len(docs)).astype(np.int64)
    keys, tf = np.unique(flat * len(docs) + local, return_counts=True)
    return (keys // len(docs)).astype(np.int32), (keys % len(docs) + first_doc).astype(np.int32), \
        tf.astype(np.int32), lengths


def lucene_bm25_matrix(postings, lengths: np.ndarray, n_terms: int) -> dict:
    """Per-(term, doc) Lucene BM25 scores in bm25s' index layout (term-major sparse: data/indices/indptr), from
    (term, doc, tf) triples in doc order and every document's length."""
    terms, docs, tf = (np.concatenate(x) for x in zip(*postings)) if postings else (np.zeros(0, np.int32),) * 3
    order = np.argsort(terms, kind="stable")  # term-major; docs stay ascending within a term
    terms, docs, tf = terms[order], docs[order], tf[order]
    n_docs = len(lengths)
    df = np.bincount(terms, minlength=n_terms)
    f32 = np.float32
    avgdl = f32(lengths.sum() / max(n_docs, 1))
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(f32)
    table = {int(x): lucene_norm_length(int(x)) for x in np.unique(lengths)}
    norm_len = np.array([table[int(x)] for x in lengths], dtype=f32)
    norm_inv = f32(1) / (f32(K1) * ((f32(1) - f32(B)) + f32(B) * norm_len / avgdl))
    w = idf[terms]
    data = w - w / (f32(1) + tf.astype(f32) * norm_inv[docs])
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    return {"data": data.astype(f32), "indices": docs, "indptr": indptr, "num_docs": n_docs}


def build_index(products, chunk: int = 20_000) -> tuple[dict[str, int], dict]:
    """Vocabulary and Lucene BM25 matrix of a product sequence, built chunk by chunk to bound memory."""
    vocab: dict[str, int] = {}
    token_ids: dict[str, int] = {}  # raw token -> term id, or -1 when it indexes as nothing

    def new_id(word: str) -> int:
        t = _term(word)
        i = token_ids[word] = vocab.setdefault(t, len(vocab)) if t else -1
        return i

    postings, lengths, batch, first = [], [], [], 0
    for p in products:
        words = _words_bag(document_text(p))
        ids = list(map(token_ids.get, words))
        if None in ids:
            ids = [i if i is not None else new_id(w) for i, w in zip(ids, words)]
        batch.append(ids)
        if len(batch) == chunk:
            *triple, ln = _chunk_postings(batch, first)
            postings.append(triple)
            lengths.append(ln)
            first += len(batch)
            batch = []
    if batch:
        *triple, ln = _chunk_postings(batch, first)
        postings.append(triple)
        lengths.append(ln)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return vocab, lucene_bm25_matrix(postings, all_lengths, len(vocab))


_ARRAYS = ("data", "indices", "indptr")


def _save_index(folder: Path, vocab: dict[str, int], matrix: dict) -> None:
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", matrix[name])
        with open(tmp / "meta.pkl", "wb") as f:
            pickle.dump({"format": INDEX_FORMAT, "vocab": vocab, "num_docs": matrix["num_docs"]}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, folder)  # atomic publish; a concurrent builder's copy wins or loses as a whole
    except OSError:
        pass  # an unwritable cache only costs rebuild time
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_index(folder: Path, n_docs: int):
    try:
        with open(folder / "meta.pkl", "rb") as f:
            meta = pickle.load(f)
        if meta.get("format") != INDEX_FORMAT or meta["num_docs"] != n_docs:
            return None
        matrix = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    except Exception:  # missing, torn or foreign: rebuild
        return None
    matrix["num_docs"] = n_docs
    return meta["vocab"], matrix


class SearchEngine:
    """BM25 over a catalogue. ``search(query, k)`` returns up to ``k`` ASINs, best first (empty for a query with no
    indexed term). Build once per catalogue: :func:`search_engine_for` memoises it in-process, and a catalogue
    loaded through ``load_catalogue`` with its cache on also keeps the index on disk (memory-mapped on reload)."""

    def __init__(self, catalogue: Catalogue, *, use_cache: bool = True):
        self.catalogue = catalogue
        self.asins = list(catalogue.asins)
        self._asin_rank = np.argsort(np.argsort(np.array(self.asins)))  # tie-break key
        folder = catalogue.cache_path("search", INDEX_FORMAT) if use_cache else None
        loaded = _load_index(folder, len(self.asins)) if folder is not None else None
        if loaded is None:
            loaded = build_index(catalogue.products)
            if folder is not None:
                _save_index(folder, *loaded)
        self.vocab, matrix = loaded
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
