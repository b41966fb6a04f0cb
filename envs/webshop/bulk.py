"""Building a packed catalogue from a big product file, on two cores when it helps.

The raw file is one JSON array. We cut it near the middle at an element boundary (``}`` ``,`` ``{`` outside any
string), let a forked child parse and pack the second half while this process does the first, then join the two blob
files. A cut that lands inside a string makes one half unparsable; then the whole file is read sequentially, so a cut
can cost time but never correctness. Duplicate ASINs across the halves are dropped from the second half (upstream
keeps the first occurrence).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .products import GOAL_FIELDS, CatalogueError, carries, iter_prepared, iter_records
from .store import BlobWriter, PackedProducts, map_file

# Files below this size are not worth a second process.
PARALLEL_MIN_BYTES = 64 << 20
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")


class RangeReader(io.RawIOBase):
    """A read-only stream over bytes [start, end) of a file, with bytes prepended and appended."""

    def __init__(self, path: str | Path, start: int, end: int, prefix: bytes = b"", suffix: bytes = b""):
        self.f = open(path, "rb")
        self.f.seek(start)
        self.left = end - start
        self.head, self.tail = prefix, suffix

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        if n == 0:
            return 0
        if self.head:
            chunk, self.head = self.head[:n], self.head[n:]
        elif self.left > 0:
            chunk = self.f.read(min(n, self.left))
            self.left -= len(chunk)
            if not chunk:
                self.left = 0
        else:
            chunk, self.tail = self.tail[:n], self.tail[n:]
        b[:len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self.f.close()
        super().close()


def find_cut(path: str | Path, size: int, window: int = 4 << 20) -> tuple[int, int] | None:
    """(end of an element's closing ``}``, offset of the next element's ``{``) near the middle of a JSON array
    file, or None. A candidate counts only if a whole product object (one with an "asin") starts there, which
    rules out the ``}, {`` between option values inside a product."""
    with open(path, "rb") as f:
        f.seek(size // 2)
        buf = f.read(window)
    decoder = json.JSONDecoder()
    for m in _BOUNDARY.finditer(buf):
        start = m.end() - 1
        text = buf[start:].decode("utf-8", errors="ignore")
        try:
            obj, end = decoder.raw_decode(text)
        except ValueError:
            continue
        if isinstance(obj, dict) and "asin" in obj and re.match(r"\s*[,\]]", text[end:end + 64]):
            return size // 2 + m.start() + 1, size // 2 + start
    return None


def pack_sequential(prepared: Iterator[dict], blob_path: Path | None):
    """Pack prepared products into ``blob_path`` (then memory-mapped) or, without one, into memory. Returns
    (products, (asin, pricing) pairs, goal positions)."""
    sink, tmp = _open_sink(blob_path)
    try:
        meta = pack_stream(prepared, sink)
        if tmp is None:
            buffer = sink.getbuffer()
        else:
            sink.close()
            os.replace(tmp, blob_path)
            buffer = map_file(blob_path) if meta["asins"] else b""
    finally:
        if tmp is not None and tmp.exists():
            sink.close()
            tmp.unlink()
    products = PackedProducts(buffer, meta["starts"], meta["ends"], meta["asins"])
    return products, zip(meta["asins"], meta["pricings"]), meta["goals"]


def _open_sink(blob_path: Path | None):
    """A temp file beside the cache (published atomically afterwards), else memory."""
    if blob_path is not None:
        try:
            blob_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=blob_path.parent, prefix=blob_path.name, suffix=".tmp")
            return os.fdopen(fd, "wb"), Path(tmp)
        except OSError:
            pass  # unwritable cache dir: keep the blobs in memory
    return io.BytesIO(), None


def pack_stream(prepared: Iterator[dict], sink: BinaryIO) -> dict:
    """Pickle prepared products into ``sink``; returns what the catalogue needs without decoding them again."""
    writer = BlobWriter(sink)
    asins, pricings, goal_positions = [], [], {k: [] for k in GOAL_FIELDS}
    for i, p in enumerate(prepared):
        writer.add(p)
        asins.append(p["asin"])
        pricings.append(p["pricing"])
        for kind in GOAL_FIELDS:
            if carries(p, kind):
                goal_positions[kind].append(i)
    offsets = writer.offsets_array()
    return {"asins": asins, "pricings": pricings, "goals": goal_positions, "starts": offsets[:-1],
            "ends": offsets[1:]}


def _pack_half(path, start, end, prefix, suffix, attrs, human, out_path) -> dict:
    with RangeReader(path, start, end, prefix, suffix) as stream, open(out_path, "wb") as sink:
        return pack_stream(iter_prepared(iter_records(stream, str(path)), attrs, human, None, str(path)), sink)


def _child(conn, *args) -> None:
    try:
        conn.send(("ok", _pack_half(*args)))
    except BaseException as e:  # report, never hang the parent
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def pack_two_halves(path: Path, attrs: dict, human: dict, blob_path: Path):
    """Pack ``path`` into ``blob_path`` using two processes, returning what :func:`pack_sequential` does; None
    when the file cannot be cut safely (the caller then reads it sequentially)."""
    size = path.stat().st_size
    cut = find_cut(path, size)
    if cut is None or "fork" not in multiprocessing.get_all_start_methods():
        return None
    end_first, start_second = cut
    try:
        blob_path.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(dir=blob_path.parent, prefix=blob_path.name + ".parts"))
    except OSError:
        return None
    try:
        first, second = tmpdir / "a", tmpdir / "b"
        ctx = multiprocessing.get_context("fork")  # the child inherits attrs/human without pickling them
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(send, path, start_second, size, b"[", b"", attrs, human, second),
                            daemon=True)
        child.start()
        send.close()
        try:
            a = _pack_half(path, 0, end_first, b"", b"]", attrs, human, first)
        except CatalogueError:
            a = None
        status, b = recv.recv()
        child.join()
        if a is None or status != "ok":
            return None
        return _join(a, b, first, second, blob_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _join(a: dict, b: dict, first: Path, second: Path, blob_path: Path):
    shift = first.stat().st_size
    with open(first, "ab") as out, open(second, "rb") as src:
        shutil.copyfileobj(src, out, 16 << 20)
    os.replace(first, blob_path)
    seen = set(a["asins"])
    keep = [i for i, asin in enumerate(b["asins"]) if asin not in seen and not seen.add(asin)]
    remap = {old: new for new, old in enumerate(keep, start=len(a["asins"]))}
    asins = a["asins"] + [b["asins"][i] for i in keep]
    starts = np.concatenate([a["starts"], b["starts"][keep] + shift])
    ends = np.concatenate([a["ends"], b["ends"][keep] + shift])
    goals = {k: a["goals"][k] + [remap[i] for i in b["goals"][k] if i in remap] for k in GOAL_FIELDS}
    pricings = a["pricings"] + [b["pricings"][i] for i in keep]
    return PackedProducts(map_file(blob_path), starts, ends, asins), zip(asins, pricings), goals
