"""The TauBench database: frozen tables loaded once per process, and cheap copy-on-access overlays per episode.

Upstream re-reads the JSON files at every reset and hashes the whole database twice per reward (~0.4 s per task).
Here the parsed JSON is loaded once (``hero_gym.data.load_json`` caches it) and never mutated. An episode works on
a :class:`TauDB` of :class:`OverlayTable` s: a record is copied out of the frozen base the first time a tool looks
it up by key, and the tools mutate that copy. Reset is O(1) (new empty overlays) and comparing two databases only
looks at the records either of them touched.

Contract for tool code (the tools are plain functions ``fn(db, **kwargs)``):

- ``table[key]``, ``table.get(key)``, ``key in table``, ``table[key] = record``, ``del table[key]``, ``len``,
  ``for key in table`` behave like a dict.
- ``table.items()`` / ``table.values()`` yield records READ-ONLY: a record not fetched by key before is the frozen
  base object itself (copying every record of a table on a scan would cost milliseconds). To change a record, fetch
  it with ``table[key]``. The tests check that replaying every gold action and fuzzing leaves the base unchanged.

Equality follows upstream, which compares ``sha256(str(to_hashable(db)))``: dict key order does not matter, list
order does, and ``100`` / ``100.0`` / ``True`` / ``1`` are all different. :func:`canonical` gives a string with
exactly those properties. tau2 instead hashes ``json.dumps(model_dump(), sort_keys=True)`` of typed pydantic models,
which turns an integer stored in a float field into a float; :func:`canonical_tau2` therefore compares numbers by
value (``100`` equals ``100.0``; ``True`` still differs from ``1``).
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Iterator, MutableMapping
from functools import lru_cache
from typing import Any

from hero_gym.data import load_json

# Files each (version, domain) database is made of: table name -> (dataset, path, key inside the file or None).
_SOURCES: dict[tuple[str, str], dict[str, tuple[str, str, str | None]]] = {
    ("v1", "retail"): {
        "users": ("tau-v1", "tau/v1/retail/users.json", None),
        "orders": ("tau-v1", "tau/v1/retail/orders.json", None),
        "products": ("tau-v1", "tau/v1/retail/products.json", None),
    },
    ("v1", "airline"): {
        "flights": ("tau-v1", "tau/v1/airline/flights.json", None),
        "reservations": ("tau-v1", "tau/v1/airline/reservations.json", None),
        "users": ("tau-v1", "tau/v1/airline/users.json", None),
    },
    ("tau2", "retail"): {t: ("tau2", "tau/tau2/retail/db.json", t) for t in ("products", "users", "orders")},
    ("tau2", "airline"): {t: ("tau2", "tau/tau2/airline/db.json", t) for t in ("flights", "users", "reservations")},
}

_MISSING = object()


def _copy_record(record: Any) -> Any:
    # marshal round-trips JSON values exactly (int/float/bool kept apart, dict order kept) and is ~3x faster than
    # copy.deepcopy on these records.
    try:
        return marshal.loads(marshal.dumps(record))
    except ValueError:  # something marshal cannot hold (a tool stored an odd object): fall back to the slow path
        import copy

        return copy.deepcopy(record)


def _hashable(value: Any) -> Any:
    """Upstream's ``to_hashable``: dicts -> sorted (key, value) tuples, lists -> tuples, sets -> sorted tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, set):
        return tuple(sorted(_hashable(v) for v in value))
    return value


def canonical(value: Any) -> str:
    """A string that is equal for two values exactly when upstream's ``str(to_hashable(value))`` is.

    ``json.dumps(sort_keys=True)`` keeps ``100`` vs ``100.0`` and ``true`` vs ``1`` apart and keeps list order, and it
    is several times faster than ``str(to_hashable(...))``. Values JSON cannot hold (non-string keys, sets, other
    objects, which only a buggy tool could store) use the upstream form itself, tagged so the two never collide.
    """
    if _json_exact(value):
        return json.dumps(value, sort_keys=True)
    return "\x00" + str(_hashable(value))


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if type(value) is int:
        return float(value)
    return value


def canonical_tau2(value: Any) -> str:
    """:func:`canonical` with every integer read as a float: tau2's pydantic models coerce numbers to the field's
    declared type, so an agent's ``100`` and the gold ``100.0`` in a float field end up equal. (Integer fields hold
    integers on both sides here: tool arguments are checked against the schemas first.)"""
    return canonical(_floats(value))


CANONICAL = {"v1": canonical, "tau2": canonical_tau2}


def _json_exact(value: Any) -> bool:
    """True when json.dumps renders `value` without losing a distinction (json turns 1 and "1" keys alike)."""
    if isinstance(value, dict):
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_exact(v) for v in value)
    return value is None or isinstance(value, (str, int, float))


class FrozenTable:
    """One table of the shared, never-mutated base database, with a lazy cache of canonical record strings."""

    __slots__ = ("name", "records", "canon", "_canon")

    def __init__(self, name: str, records: dict[str, Any], canon: Any = canonical):
        self.name = name
        self.records = records
        self.canon = canon  # the version's canonical form (canonical or canonical_tau2)
        self._canon: dict[str, str] = {}

    def canonical(self, key: str) -> str | None:
        """Canonical string of the base record `key`, or None when the base has no such record."""
        c = self._canon.get(key)
        if c is None:
            record = self.records.get(key, _MISSING)
            if record is _MISSING:
                return None
            c = self._canon[key] = self.canon(record)
        return c


@lru_cache(maxsize=None)
def base_tables(version: str, domain: str) -> dict[str, FrozenTable]:
    """The frozen base database of a domain, loaded once per process."""
    try:
        sources = _SOURCES[(version, domain)]
    except KeyError:
        known = ", ".join(f"{v}/{d}" for v, d in _SOURCES)
        raise ValueError(f"no TauBench database for version={version!r} domain={domain!r}; known: {known}") from None
    tables = {}
    for name, (dataset, relpath, key) in sources.items():
        data = load_json(dataset, relpath)
        tables[name] = FrozenTable(name, data if key is None else data[key], CANONICAL[version])
    return tables


class OverlayTable(MutableMapping):
    """A dict-like view of a frozen table that copies a record out of the base on first access by key.

    Deleted base keys are remembered; added keys keep insertion order after the base keys, as in a dict.
    """

    def __init__(self, base: FrozenTable):
        self._base = base
        self._own: dict[str, Any] = {}  # records this episode copied, changed or added
        self._deleted: set[str] = set()
        self._added: dict[str, None] = {}  # keys not in the base, in insertion order

    # -- dict protocol -------------------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        record = self._own.get(key, _MISSING) if _is_key(key) else _MISSING
        if record is not _MISSING:
            return record
        if not _is_key(key) or key in self._deleted or key not in self._base.records:
            raise KeyError(key)
        record = self._own[key] = _copy_record(self._base.records[key])
        return record

    def __setitem__(self, key: Any, value: Any) -> None:
        if not _is_key(key):
            raise TypeError(f"table keys must be strings, got {type(key).__name__}")
        if key not in self._base.records and key not in self._added:
            self._added[key] = None
        elif key in self._deleted:
            # A base key deleted then set again moves to the end of the order, like a dict.
            self._deleted.discard(key)
            self._added[key] = None
        self._own[key] = value

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self._own.pop(key, None)
        self._added.pop(key, None)
        if key in self._base.records:
            self._deleted.add(key)

    def __contains__(self, key: Any) -> bool:
        if not _is_key(key):
            return False
        if key in self._own:
            return True
        return key in self._base.records and key not in self._deleted

    def __iter__(self) -> Iterator[str]:
        deleted, added = self._deleted, self._added
        for key in self._base.records:
            if key not in deleted and key not in added:
                yield key
        yield from list(added)

    def __len__(self) -> int:
        n = len(self._base.records) - len(self._deleted)
        return n + sum(1 for k in self._added if k not in self._base.records)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def items(self):  # type: ignore[override]
        """(key, record) pairs; records not fetched by key before are the read-only base objects."""
        own = self._own
        for key in self:
            record = own.get(key, _MISSING)
            yield key, (self._base.records[key] if record is _MISSING else record)

    def values(self):  # type: ignore[override]
        """Records in table order; records not fetched by key before are the read-only base objects."""
        for _, record in self.items():
            yield record

    # -- overlay bookkeeping -------------------------------------------------------------------------------------
    def touched(self) -> set[str]:
        """Keys this episode may have changed: fetched, set, added or deleted."""
        return set(self._own) | self._deleted

    def state_of(self, key: str) -> str | None:
        """Canonical string of the record `key` as this overlay sees it (None: no such record)."""
        record = self._own.get(key, _MISSING)
        if record is not _MISSING:
            return self._base.canon(record)
        if key in self._deleted:
            return None
        return self._base.canonical(key)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the whole table (copies nothing; for inspection and tests)."""
        return dict(self.items())


def _is_key(key: Any) -> bool:
    return isinstance(key, str)


class TauDB(dict):
    """An episode's database: table name -> :class:`OverlayTable` over the shared frozen base. Reset = a new TauDB."""

    def __init__(self, version: str, domain: str):
        self.version, self.domain = version, domain
        self._bases = base_tables(version, domain)
        super().__init__({name: OverlayTable(base) for name, base in self._bases.items()})

    def snapshot(self) -> dict[str, dict[str, str | None]]:
        """Canonical strings of every touched record, per table: what a later comparison needs, and no more."""
        return {name: {key: table.state_of(key) for key in table.touched()} for name, table in self.items()}

    def diff(self, other: dict[str, dict[str, str | None]]) -> list[tuple[str, str]]:
        """(table, key) of every record whose state differs from a snapshot `other` of the same domain.

        Records neither side touched are the base on both sides, so only the union of touched keys is compared.
        """
        out = []
        for name, table in self.items():
            theirs = other.get(name, {})
            base = self._bases[name]
            for key in sorted(table.touched() | set(theirs)):
                mine = table.state_of(key)
                other_state = theirs[key] if key in theirs else base.canonical(key)
                if mine != other_state:
                    out.append((name, key))
        return out

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The whole database as plain dicts (records shared with the base; do not mutate)."""
        return {name: table.to_dict() for name, table in self.items()}


def full_hash(db: dict[str, Any]) -> str:
    """Upstream's database hash, ``sha256(str(to_hashable(db)))``, over a whole database. Slow (~0.1 s); for
    benchmarks and cross-checks only."""
    import hashlib

    plain = db.to_dict() if isinstance(db, TauDB) else db
    return hashlib.sha256(str(_hashable(plain)).encode()).hexdigest()
