"""Lucene's BM25 over analysed product documents: length norms, the per-(term, document) score matrix in bm25s'
layout, a chunked (and, for big catalogues, two-process) build, and the on-disk copy that is memory-mapped back.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import numpy as np

from .analysis import _term, _words_bag, document_text
from .cache_files import read_npz, write_npz

K1, B = 0.9, 0.4
INDEX_FORMAT = 2  # bump when analysis, scoring or the files change, so cached indexes are rebuilt (2: JSON + npy)
# Catalogues at least this big are analysed by two processes (analysis is ~0.3 ms a document).
PARALLEL_MIN_DOCS = 100_000


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


def _range(products, start: int, stop: int):
    decode = getattr(products, "decode", None)  # packed catalogues: skip the recent-products cache
    for i in range(start, stop):
        yield decode(i) if decode else products[i]


def _analyse(products, start: int, stop: int, chunk: int):
    """Vocabulary (first-occurrence order), postings per chunk and document lengths of products[start:stop]."""
    vocab: dict[str, int] = {}
    token_ids: dict[str, int] = {}  # raw token -> term id, or -1 when it indexes as nothing

    def new_id(word: str) -> int:
        t = _term(word)
        i = token_ids[word] = vocab.setdefault(t, len(vocab)) if t else -1
        return i

    postings, lengths, batch, first = [], [], [], start

    def flush():
        nonlocal batch, first
        *triple, ln = _chunk_postings(batch, first)
        postings.append(triple)
        lengths.append(ln)
        first += len(batch)
        batch = []

    for p in _range(products, start, stop):
        words = _words_bag(document_text(p))
        ids = list(map(token_ids.get, words))
        if None in ids:
            ids = [i if i is not None else new_id(w) for i, w in zip(ids, words)]
        batch.append(ids)
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    return vocab, postings, lengths


def _child(conn, products, start, stop, chunk, out: Path) -> None:
    try:
        vocab, postings, lengths = _analyse(products, start, stop, chunk)
        t, d, tf = (np.concatenate(x) for x in zip(*postings)) if postings else (np.zeros(0, np.int32),) * 3
        ln = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        if not write_npz(out, {"terms": list(vocab)}, {"terms": t, "docs": d, "tf": tf, "lengths": ln}):
            raise OSError(f"cannot write {out}")
        conn.send("ok")
    except BaseException as e:  # report, never hang the parent
        conn.send(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        conn.close()


def _analyse_in_two(products, n: int, chunk: int):
    """:func:`_analyse` of all products, the second half in a forked child; None if the child fails."""
    mid = n // 2
    with tempfile.TemporaryDirectory(prefix="webshop-index-") as tmp:
        out = Path(tmp) / "half.npz"
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(send, products, mid, n, chunk, out), daemon=True)
        child.start()
        send.close()
        vocab, postings, lengths = _analyse(products, 0, mid, chunk)
        status = recv.recv()
        child.join()
        if status != "ok":
            return None
        got = read_npz(out)
    if got is None:
        return None
    meta, more = got
    # Appending the child's terms in its first-occurrence order gives exactly the sequential vocabulary.
    remap = np.array([vocab.setdefault(t, len(vocab)) for t in meta["terms"]] or [0], dtype=np.int32)
    postings.append((remap[more["terms"]], more["docs"], more["tf"]))
    return vocab, postings, lengths + [more["lengths"]]


def build_index(products, chunk: int = 20_000, workers: int | None = None) -> tuple[dict[str, int], dict]:
    """Vocabulary and Lucene BM25 matrix of a product sequence, built chunk by chunk to bound memory; with
    ``workers=2`` (default for big catalogues on a multi-core machine) the second half is analysed in a child
    process. The result does not depend on ``chunk`` or ``workers``."""
    n = len(products)
    if workers is None:
        workers = 2 if n >= PARALLEL_MIN_DOCS and (os.cpu_count() or 1) > 1 else 1
    parts = None
    if workers > 1 and n > 1 and "fork" in multiprocessing.get_all_start_methods():
        parts = _analyse_in_two(products, n, chunk)
    if parts is None:
        parts = _analyse(products, 0, n, chunk)
    vocab, postings, lengths = parts
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return vocab, lucene_bm25_matrix(postings, all_lengths, len(vocab))


_ARRAYS = ("data", "indices", "indptr")


def asin_rank(asins: list[str]) -> np.ndarray:
    """Position of each ASIN in sorted order (Anserini breaks score ties by document id); sorting 1.18M strings
    takes a second, so it is cached with the index."""
    order = np.argsort(np.array(asins), kind="stable")
    rank = np.empty(len(asins), dtype=np.int64)
    rank[order] = np.arange(len(asins))
    return rank


def _save_index(folder: Path, vocab: dict[str, int], matrix: dict, rank: np.ndarray) -> None:
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", matrix[name], allow_pickle=False)
        np.save(tmp / "asin_rank.npy", rank, allow_pickle=False)
        # The vocabulary as a JSON list in id order: nothing in the folder is unpickled on load.
        meta = {"format": INDEX_FORMAT, "terms": list(vocab), "num_docs": matrix["num_docs"]}
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=True), encoding="ascii")
        try:
            os.replace(tmp, folder)  # atomic publish; a concurrent builder's copy wins or loses as a whole
        except OSError:
            # A folder is already there (it failed to load, or a concurrent build published first): replace it,
            # so a torn or foreign index is not rebuilt on every start.
            if _load_index(folder, matrix["num_docs"]) is None:
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
    except OSError:
        pass  # an unwritable cache only costs rebuild time
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_index(folder: Path, n_docs: int):
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="ascii"))
        if meta.get("format") != INDEX_FORMAT or meta["num_docs"] != n_docs:
            return None
        # allow_pickle=False: an object array planted in the folder is refused, never unpickled.
        matrix = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
        terms = meta["terms"]
        vocab = dict(zip(terms, range(len(terms))))
        if len(vocab) != len(terms):
            return None
        indptr = matrix["indptr"]
        if len(indptr) != len(vocab) + 1 or not int(indptr[-1]) == len(matrix["data"]) == len(matrix["indices"]):
            return None
        rank = np.load(folder / "asin_rank.npy", allow_pickle=False)
        if rank.shape != (n_docs,) or rank.dtype != np.int64:
            return None
    except Exception:  # missing, torn or foreign: rebuild
        return None
    matrix["num_docs"] = n_docs
    return vocab, matrix, rank


