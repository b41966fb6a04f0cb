"""Packed product storage for big catalogues: prepared products as JSON texts back to back in one buffer (bytes,
or a memory-mapped cache file), decoded on access.

1.18M product dicts would cost ~10 GB of Python objects and ~25 s to decode at once; a memory-mapped blob file opens
in milliseconds and an episode only ever looks at a few dozen products. :class:`PackedProducts` behaves as a
read-only sequence of dicts and :class:`PackedIndex` as a read-only ASIN -> product mapping.

Blobs are JSON, not pickle: cache folders are often shared, and decoding a crafted pickle runs code. Each blob is
``[aliased keys, product]``: keys whose value is the very object of another key (``Title`` is ``name``,
``Description`` is ``full_description``, as the loader sets them) are stored once and re-linked on decode, which
keeps the file ~20% smaller and the key order unchanged.
"""

from __future__ import annotations

import json
import mmap
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

# Decoded products kept per catalogue: enough for many concurrent episodes' result pages.
DECODED_CACHE = 4096
# key -> the key it is an alias of (same object) in a prepared product.
ALIASES = {"Title": "name", "Description": "full_description"}
# ensure_ascii: any str (even a lone surrogate) encodes, and the blob is plain ASCII bytes.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def encode_product(product: dict) -> bytes:
    """One product as a JSON blob (see the module docstring)."""
    aliased = [k for k, src in ALIASES.items() if k in product and src in product and product[k] is product[src]]
    body = dict(product)
    for k in aliased:
        body[k] = None
    return _ENCODER.encode([aliased, body]).encode("ascii")


def decode_product(blob) -> dict:
    """Inverse of :func:`encode_product`; ValueError on a blob it did not write."""
    obj = json.loads(blob.tobytes() if isinstance(blob, memoryview) else blob)
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[1], dict) and isinstance(obj[0], list)
            and all(k in ALIASES for k in obj[0])):
        raise ValueError("not a packed WebShop product")
    aliased, product = obj
    for k in aliased:
        product[k] = product[ALIASES[k]]
    return product


class BlobWriter:
    """Appends JSON-encoded products to a binary stream (a file, or memory) and records where each one starts."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.offsets = [0]

    def add(self, product: dict) -> None:
        b = encode_product(product)
        self.out.write(b)
        self.offsets.append(self.offsets[-1] + len(b))

    def offsets_array(self) -> np.ndarray:
        return np.asarray(self.offsets, dtype=np.int64)


def map_file(path: str | Path) -> mmap.mmap:
    """Read-only memory map of a blob file."""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class PackedProducts(Sequence):
    """Read-only sequence of product dicts encoded in ``buffer`` at [starts[i], ends[i]) (decoded on access; the
    most recent ones are kept so repeated lookups return the same dict)."""

    def __init__(self, buffer, starts: np.ndarray, ends: np.ndarray, asins: list[str]):
        if not len(starts) == len(ends) == len(asins) or (len(ends) and int(ends.max()) > len(buffer)):
            raise ValueError(f"inconsistent packed catalogue: {len(asins)} ASINs, {len(starts)}/{len(ends)} spans, "
                             f"{len(buffer)} bytes")
        self.buffer = buffer
        self.starts, self.ends = starts, ends
        self.asins = asins
        self._recent: OrderedDict[int, dict] = OrderedDict()
        self._lock = threading.Lock()  # envs in threads share one catalogue

    def __len__(self) -> int:
        return len(self.asins)

    def decode(self, i: int) -> dict:
        """Product ``i`` freshly decoded (no caching; for full passes)."""
        return decode_product(self.buffer[int(self.starts[i]):int(self.ends[i])])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"product index {i} out of range for {n} products")
        i %= n
        with self._lock:
            p = self._recent.get(i)
            if p is not None:
                self._recent.move_to_end(i)
                return p
        p = self.decode(i)
        with self._lock:
            p = self._recent.setdefault(i, p)  # a racing decode of the same product keeps one dict
            if len(self._recent) > DECODED_CACHE:
                self._recent.popitem(last=False)
        return p

    def __iter__(self) -> Iterator[dict]:
        # A full pass decodes afresh instead of churning the recent-products cache.
        for i in range(len(self)):
            yield self.decode(i)


class PackedIndex(Mapping):
    """Read-only ASIN -> product mapping over :class:`PackedProducts`."""

    def __init__(self, products: PackedProducts):
        self.products = products
        self.position = dict(zip(products.asins, range(len(products.asins))))

    def __getitem__(self, asin: str) -> dict:
        return self.products[self.position[asin]]

    def __contains__(self, asin) -> bool:
        return asin in self.position

    def __iter__(self) -> Iterator[str]:
        return iter(self.products.asins)

    def __len__(self) -> int:
        return len(self.position)
