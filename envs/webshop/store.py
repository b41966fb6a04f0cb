"""Packed product storage for big catalogues: prepared products pickled back to back in one buffer (bytes, or a
memory-mapped cache file), decoded on access.

1.18M product dicts would cost ~10 GB of Python objects and ~25 s to unpickle; a memory-mapped blob file opens in
milliseconds and an episode only ever looks at a few dozen products. :class:`PackedProducts` behaves as a read-only
sequence of dicts and :class:`PackedIndex` as a read-only ASIN -> product mapping.
"""

from __future__ import annotations

import mmap
import pickle
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

# Decoded products kept per catalogue: enough for many concurrent episodes' result pages.
DECODED_CACHE = 4096


class BlobWriter:
    """Appends pickled products to a binary stream (a file, or memory) and records where each one starts."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.offsets = [0]

    def add(self, product: dict) -> None:
        b = pickle.dumps(product, protocol=pickle.HIGHEST_PROTOCOL)
        self.out.write(b)
        self.offsets.append(self.offsets[-1] + len(b))

    def offsets_array(self) -> np.ndarray:
        return np.asarray(self.offsets, dtype=np.int64)


def map_file(path: str | Path) -> mmap.mmap:
    """Read-only memory map of a blob file."""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class PackedProducts(Sequence):
    """Read-only sequence of product dicts pickled in ``buffer`` at [starts[i], ends[i]) (decoded on access; the
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
        """Product ``i`` freshly unpickled (no caching; for full passes)."""
        return pickle.loads(self.buffer[int(self.starts[i]):int(self.ends[i])])

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
        self.position = {a: i for i, a in enumerate(products.asins)}

    def __getitem__(self, asin: str) -> dict:
        return self.products[self.position[asin]]

    def __contains__(self, asin) -> bool:
        return asin in self.position

    def __iter__(self) -> Iterator[str]:
        return iter(self.products.asins)

    def __len__(self) -> int:
        return len(self.position)
