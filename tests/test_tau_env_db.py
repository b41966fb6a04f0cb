"""envs/tau/db.py: copy-on-access overlays, upstream-equal canonical form, touched-record comparison."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_gym.benchmarks.bench_tau import full_db_hash, load_from_disk
from hero_gym.envs.tau.db import FrozenTable, OverlayTable, TauDB, base_tables, canonical

ORDER = "#W2378156"


def _base_fingerprint(version, domain):
    return {n: json.dumps(t.records, sort_keys=True) for n, t in base_tables(version, domain).items()}


def test_canonical_follows_upstream_equality():
    # upstream hashes str(to_hashable(x)): these pairs differ there, so they must differ here
    for a, b in [(100, 100.0), (True, 1), (False, 0), ([1, 2], [2, 1]), (None, "None"), ("1", 1)]:
        assert canonical(a) != canonical(b), (a, b)
    # ... and dict key order is irrelevant
    assert canonical({"a": 1, "b": [1, {"x": 2, "y": 3}]}) == canonical({"b": [1, {"y": 3, "x": 2}], "a": 1})
    # values JSON cannot hold still get a stable, distinct form
    assert canonical({1: "x"}) != canonical({"1": "x"})
    assert canonical({"s": {3, 1}}) == canonical({"s": {1, 3}})


def test_tau2_canonical_reads_numbers_by_value():
    from hero_gym.envs.tau.db import canonical_tau2

    assert canonical_tau2({"a": [100, {"b": 2}]}) == canonical_tau2({"a": [100.0, {"b": 2.0}]})
    assert canonical_tau2(True) != canonical_tau2(1) and canonical_tau2(1.5) != canonical_tau2(1)
    assert canonical_tau2([1, 2]) != canonical_tau2([2, 1])


def test_access_copies_and_never_touches_the_base():
    before = _base_fingerprint("v1", "retail")
    db = TauDB("v1", "retail")
    order = db["orders"][ORDER]
    order["status"] = "cancelled"
    order["items"].append({"x": 1})
    assert db["orders"][ORDER] is order  # the same copy on the next access
    assert base_tables("v1", "retail")["orders"].records[ORDER]["status"] != "cancelled"
    assert TauDB("v1", "retail")["orders"][ORDER]["status"] != "cancelled"  # a new episode starts clean
    assert _base_fingerprint("v1", "retail") == before


def test_overlay_dict_semantics_add_delete_order():
    base = FrozenTable("t", {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}})
    t = OverlayTable(base)
    assert list(t) == ["a", "b", "c"] and len(t) == 3 and "a" in t and 5 not in t
    t["d"] = {"v": 4}
    del t["b"]
    assert list(t) == ["a", "c", "d"] and len(t) == 3 and "b" not in t
    with pytest.raises(KeyError):
        t["b"]
    assert t.get("b") is None and t.get(5, "dflt") == "dflt"
    t["b"] = {"v": 20}  # re-adding a deleted base key puts it last, like a dict
    assert list(t) == ["a", "c", "d", "b"] and len(t) == 4
    t["a"] = {"v": 10}  # overwriting keeps the position
    assert list(t) == ["a", "c", "d", "b"]
    del t["b"]
    assert list(t) == ["a", "c", "d"] and len(t) == 3
    with pytest.raises(KeyError):
        del t["zzz"]
    with pytest.raises(TypeError):
        t[3] = {}
    assert dict(t.items()) == {"a": {"v": 10}, "c": {"v": 3}, "d": {"v": 4}}
    assert base.records == {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}


def test_diff_reports_changed_added_and_deleted_records():
    gold = TauDB("v1", "airline")
    gold["reservations"]["HATHAT"] = {"reservation_id": "HATHAT"}
    snap = gold.snapshot()
    ep = TauDB("v1", "airline")
    assert ep.diff(snap) == [("reservations", "HATHAT")]
    ep["reservations"]["HATHAT"] = {"reservation_id": "HATHAT"}
    assert ep.diff(snap) == []
    ep["users"]["mia_li_3668"]  # a read-only access touches but does not change
    assert ep.diff(snap) == []
    ep["users"]["mia_li_3668"]["membership"] = "regular"
    del ep["flights"]["HAT001"]
    assert sorted(ep.diff(snap)) == [("flights", "HAT001"), ("users", "mia_li_3668")]


def test_int_vs_float_amount_is_a_difference():
    gold = TauDB("v1", "retail")
    gold["users"]["yusuf_rossi_9620"]["payment_methods"]["x"] = {"amount": 100}
    ep = TauDB("v1", "retail")
    ep["users"]["yusuf_rossi_9620"]["payment_methods"]["x"] = {"amount": 100.0}
    assert ep.diff(gold.snapshot()) == [("users", "yusuf_rossi_9620")]


_edits = st.lists(
    st.tuples(
        st.sampled_from(["users", "products"]),  # orders stay untouched: hashing them is slow
        st.integers(0, 4),
        st.sampled_from(["set_int", "set_float", "set_bool", "append", "delete", "add", "noop"]),
    ),
    max_size=6,
)


def _apply(db, edits):
    for table, i, op in edits:
        keys = list(db[table])
        key = keys[i % len(keys)]
        if op == "delete":
            del db[table][key]
        elif op == "add":
            db[table][f"NEW{i}"] = {"i": i}
        elif op == "noop":
            db[table][key]
        else:
            rec = db[table][key]
            if op == "append":
                rec.setdefault("extra_list", []).append(i)
            else:
                rec["extra"] = {"set_int": 1, "set_float": 1.0, "set_bool": True}[op]


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(_edits, _edits)
def test_touched_record_diff_agrees_with_whole_db_hash(a, b):
    """Our comparison must say 'equal' exactly when upstream's full-database sha256 does."""
    left, right = TauDB("v1", "retail"), TauDB("v1", "retail")
    _apply(left, a)
    _apply(right, b)
    ours_equal = left.diff(right.snapshot()) == []
    plain_l = {n: dict(left[n].items()) for n in ("users", "products")}
    plain_r = {n: dict(right[n].items()) for n in ("users", "products")}
    assert ours_equal == (full_db_hash(plain_l) == full_db_hash(plain_r))


def test_base_equals_a_fresh_load_from_disk():
    fresh = load_from_disk("tau2", "retail")
    assert full_db_hash(TauDB("tau2", "retail").to_dict()) == full_db_hash(fresh)


def test_unknown_database_is_a_value_error():
    with pytest.raises(ValueError, match="no TauBench database"):
        TauDB("v3", "retail")
