"""Cache files that cannot run code when read: JSON metadata plus numeric numpy arrays in one ``.npz``.

Caches often live on shared disks, so whoever can write there must not be able to make a reader execute code (as
``pickle.load`` would). Arrays are read with ``allow_pickle=False`` (an object array in a planted file is refused,
not unpickled) and the metadata is JSON. A file is published with an atomic rename, so concurrent readers see the
old file or the whole new one; an unwritable cache directory only costs rebuild time.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

_META = "__meta__"


def write_npz(path: Path, meta: dict, arrays: dict[str, np.ndarray] | None = None) -> bool:
    """Write ``meta`` (JSON-serialisable) and ``arrays`` (numeric dtypes only) to ``path`` atomically; False if the
    directory is not writable."""
    arrays = dict(arrays or {})
    for name, a in arrays.items():
        if name == _META or np.asarray(a).dtype.hasobject:
            raise ValueError(f"cache array {name!r} must be numeric, got dtype {np.asarray(a).dtype}")
    arrays[_META] = np.frombuffer(json.dumps(meta, ensure_ascii=True).encode("ascii"), dtype=np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(meta, arrays) of a file written by :func:`write_npz`; None when it is missing, torn or foreign (including
    a file holding pickled objects, which is never unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("ascii"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, RecursionError):
        return None
    return (meta, arrays) if isinstance(meta, dict) else None
