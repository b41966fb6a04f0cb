"""Text analysis as Anserini's default English analyzer does it (what upstream WebShop's Lucene index uses), and the
document text upstream indexes for a product. Checked token for token against pyserini's analyzer on the 1k
catalogue (999 of 1,000 documents identical; see tests/test_webshop_engine_search.py).
"""

from __future__ import annotations

import re

import regex
from bm25s.stopwords import STOPWORDS_EN
from nltk.stem.porter import PorterStemmer

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


