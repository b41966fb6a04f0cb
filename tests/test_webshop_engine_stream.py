"""Streaming load of a (scaled-down) synthetic full-format catalogue, the prepared-catalogue cache, bad files."""

import json
import os
import tracemalloc

import pytest

from hero_gym.envs.webshop import catalogue as cat_mod
from hero_gym.envs.webshop.catalogue import CatalogueError, iter_products, load_catalogue
from hero_gym.envs.webshop.goals import build_goals
from hero_gym.envs.webshop.synthetic import write_synthetic_attributes, write_synthetic_catalogue

N = 1500


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("wsfull")
    items = write_synthetic_catalogue(d / "items_shuffle.json", N, seed=3)
    attrs = write_synthetic_attributes(d / "items_ins_v2.json", N, seed=3)
    return items, attrs


@pytest.fixture(autouse=True)
def no_noun_tagging(monkeypatch):
    # Title tagging at build time is covered on the 1k data; here it would only cost seconds.
    monkeypatch.setattr(cat_mod, "NOUN_PRECOMPUTE_ALL_MAX", 0)


def _load(files, cache_dir, **kw):
    items, attrs = files
    return load_catalogue("full", items_path=items, attrs_path=attrs, cache_dir=cache_dir, **kw)


@pytest.mark.parametrize("packed", [False, True])
def test_streaming_load_skips_bad_and_duplicate_asins(files, tmp_path, packed):
    cat = _load(files, tmp_path, use_cache=False, packed=packed)
    assert cat.packed is packed
    assert len(cat.products) == N  # N good records + 'nan' + a duplicate of record 0
    assert len(cat.by_asin) == N and "nan" not in cat.by_asin
    raw = json.loads(files[0].read_text())
    assert len(raw) == N + 2
    first = cat.by_asin[raw[0]["asin"]]
    assert first["Title"] == raw[0]["name"]  # the first occurrence wins
    for p in cat.products:
        assert "brand" not in p and "product_information" not in p
        assert p["Attributes"] and p["Price"].startswith("$")
        assert all(v == v.lower() and "/" not in v for vals in p["options"].values() for v in vals)
    goals = build_goals(cat, "synthetic")
    eager = _load(files, tmp_path / "eager", use_cache=False, packed=False)
    assert goals == build_goals(eager, "synthetic") and cat.prices == eager.prices
    assert list(cat.products) == eager.products


def test_streaming_does_not_hold_the_file(files):
    size = os.path.getsize(files[0])
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_products(files[0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == N + 2
    assert peak < size / 20, f"peak {peak} B while streaming a {size} B file"


@pytest.mark.parametrize("packed", [False, True])
def test_cache_roundtrip_and_invalidation(files, tmp_path, monkeypatch, packed):
    first = _load(files, tmp_path, packed=packed)
    cached = list(tmp_path.glob("catalogue-*.npz"))
    assert len(cached) == 1
    assert len(list(tmp_path.glob("catalogue-*.blobs"))) == int(packed)
    assert not list(tmp_path.glob("*.tmp"))
    cat_mod._loaded.clear()

    def no_build(*a, **k):
        raise AssertionError("rebuilt although a valid cache exists")

    with monkeypatch.context() as m:
        m.setattr(cat_mod, "_build", no_build)
        again = _load(files, tmp_path, packed=packed)
    assert again is not first and again.packed is packed
    assert [p["asin"] for p in again.products] == [p["asin"] for p in first.products]
    assert again.products[5] == first.products[5] and again.prices == first.prices
    assert _load(files, tmp_path, packed=packed) is again  # memoised in-process
    # A changed input file (size/mtime) means a new key and a rebuild; a torn cache file is rebuilt, not trusted.
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cat_mod._loaded.clear()
    rebuilt = _load(files, tmp_path, packed=packed)
    assert len(list(tmp_path.glob("catalogue-*.npz"))) == 2 and len(rebuilt.products) == N
    newest = max(tmp_path.glob("catalogue-*.npz"), key=os.path.getmtime)
    if packed:  # a truncated blob file no longer matches its offsets
        blobs = newest.with_suffix(".blobs")
        blobs.write_bytes(blobs.read_bytes()[:-10])
    else:
        newest.write_bytes(b"not a pickle")
    cat_mod._loaded.clear()
    assert _read_fails(newest)
    assert len(_load(files, tmp_path, packed=packed).products) == N


def _read_fails(path):
    return cat_mod._read_cache(path) is None


def test_large_catalogues_tag_nouns_lazily(files, tmp_path):
    from hero_gym.envs.webshop import text

    cat = _load(files, tmp_path, use_cache=False, packed=True)
    name = cat.products[7]["name"]
    text._noun_memo.pop(name, None)
    assert text.known_nouns(name) is None
    assert cat.nouns(cat.products[7]["asin"]) == text.known_nouns(name)


def test_packed_products_behave_like_a_list(files, tmp_path):
    cat = _load(files, tmp_path, use_cache=False, packed=True)
    p = cat.products
    assert p[0] is p[0] and p[-1]["asin"] == p[len(p) - 1]["asin"]
    assert [x["asin"] for x in p[2:5]] == p.asins[2:5]
    with pytest.raises(IndexError):
        p[len(p)]
    asin = p.asins[9]
    assert asin in cat.by_asin and cat.by_asin[asin] is p[9] and cat.product(asin.lower()) is p[9]
    assert "B999999999" not in cat.by_asin and len(cat.by_asin) == N


@pytest.mark.parametrize("content, match", [
    ('{"asin": "B0"}', "not a valid JSON array"),
    ('[{"asin": "B000000001"', "not a valid JSON array"),
    ("[1, 2]", "element 0 is a int"),
    ('[{"asin": "B000000001", "name": "x"}]', "lacks full_description"),
])
def test_malformed_files_raise_catalogue_errors(tmp_path, content, match):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(CatalogueError, match=match):
        load_catalogue("full", items_path=bad, cache_dir=tmp_path, use_cache=False)


def test_bad_price_names_the_product(tmp_path):
    items = write_synthetic_catalogue(tmp_path / "items.json", 3)
    raw = json.loads(items.read_text())
    raw[1]["pricing"] = "$12.3.4"
    items.write_text(json.dumps(raw))
    with pytest.raises(CatalogueError, match=raw[1]["asin"]):
        load_catalogue("full", items_path=items, cache_dir=tmp_path, use_cache=False)


def test_two_core_build_equals_sequential(files, tmp_path, monkeypatch):
    from hero_gym.envs.webshop import bulk

    seq = _load(files, tmp_path / "seq", packed=True)
    monkeypatch.setattr(bulk, "PARALLEL_MIN_BYTES", 0)
    calls = []
    real = bulk.pack_two_halves
    monkeypatch.setattr(bulk, "pack_two_halves", lambda *a: calls.append(real(*a)) or calls[-1])
    cat_mod._loaded.clear()
    two = _load(files, tmp_path / "two", packed=True)
    assert len(calls) == 1 and calls[0] is not None  # really built from two halves
    assert two.products.asins == seq.products.asins  # the cross-half duplicate is dropped too
    assert list(two.products) == list(seq.products) and two.prices == seq.prices
    assert two.goal_positions == seq.goal_positions
    assert build_goals(two, "synthetic") == build_goals(seq, "synthetic")


def test_cuts_never_land_inside_strings_or_options(tmp_path, monkeypatch):
    from hero_gym.envs.webshop import bulk

    items = write_synthetic_catalogue(tmp_path / "items.json", 3)
    raw = json.loads(items.read_text())
    # The middle of the file is a description holding the boundary pattern and a product-like object.
    raw[1]["full_description"] = "x " * 9000 + '}, {"asin": "B0TRAP0000"}, {' + " y" * 500
    raw[1]["customization_options"] = {"Color": [{"value": "red"}, {"value": "blue"}]}
    items.write_text(json.dumps(raw))
    end_first, start_second = bulk.find_cut(items, items.stat().st_size)
    data = items.read_bytes()
    assert len(data) // 2 < data.index(b"B0TRAP") < data.index(b'"value": "blue"') < start_second
    assert json.loads(b"[" + data[start_second:]) == raw[2:]
    assert json.loads(data[:end_first] + b"]") == raw[:2]


def test_a_bad_cut_falls_back_to_sequential(tmp_path, monkeypatch):
    from hero_gym.envs.webshop import bulk

    items = write_synthetic_catalogue(tmp_path / "items.json", 3)
    raw = json.loads(items.read_text())
    raw[1]["full_description"] = "x " * 4000 + "}, {" + " y" * 4000
    items.write_text(json.dumps(raw))
    mid = items.read_bytes().index(b"}, {")
    monkeypatch.setattr(bulk, "find_cut", lambda path, size: (mid + 1, mid + 3))  # inside the string
    monkeypatch.setattr(bulk, "PARALLEL_MIN_BYTES", 0)
    calls = []
    real = bulk.pack_two_halves
    monkeypatch.setattr(bulk, "pack_two_halves", lambda *a: calls.append(real(*a)) or calls[-1])
    cat = load_catalogue("full", items_path=items, cache_dir=tmp_path / "c", packed=True)
    assert calls == [None]  # the halves did not parse, so the file was read sequentially
    assert cat.products.asins == [r["asin"] for r in raw[:3]]
    assert cat.products[1]["full_description"] == raw[1]["full_description"]


def test_range_reader():
    import io as _io

    from hero_gym.envs.webshop.bulk import RangeReader

    path = os.path.join(os.path.dirname(__file__), "conftest.py")
    data = open(path, "rb").read()
    with RangeReader(path, 5, 40, b"<<", b">>") as r:
        assert _io.BufferedReader(r, 7).read() == b"<<" + data[5:40] + b">>"
    with RangeReader(path, 5, 40) as r:
        assert r.read(0) == b"" and r.read() == data[5:40]  # a zero-size probe must not end the range


def test_index_of_a_packed_catalogue_in_two_processes(files, tmp_path):
    import numpy as np

    from hero_gym.envs.webshop.search import SearchEngine, build_index

    cat = _load(files, tmp_path, use_cache=False, packed=True)
    v1, m1 = build_index(cat.products, chunk=100, workers=1)
    v2, m2 = build_index(cat.products, chunk=100, workers=2)
    assert v1 == v2 and all(np.array_equal(m1[k], m2[k]) for k in ("data", "indices", "indptr"))
    engine = SearchEngine(cat)
    title = cat.products[3]["Title"]
    hits, scores = engine.search(title), engine.scores(title)
    pos = {a: i for i, a in enumerate(cat.products.asins)}
    ranked = [float(scores[pos[a]]) for a in hits]
    assert len(hits) == 50 and ranked == sorted(ranked, reverse=True)
    assert scores[3] > 0 and ranked[-1] >= np.sort(scores)[-50]


def test_goal_table_is_cached_beside_the_catalogue(files, tmp_path, monkeypatch):
    from hero_gym.envs.webshop import goal_table as gt
    from hero_gym.envs.webshop.goals import goal_table

    monkeypatch.setattr(cat_mod, "_loaded", {})  # this tmp_path's catalogue, not one memoised by another test
    cat = _load(files, tmp_path, packed=True)
    goals = build_goals(cat, "synthetic")
    assert len(goals) > N // 4 and len(list(tmp_path.glob("goals-*-synthetic-seed0.npz"))) == 1

    def no_build(*a, **k):
        raise AssertionError("goal table rebuilt although a valid cache exists")

    monkeypatch.setattr(gt, "build_table", no_build)
    table = goal_table(cat, "synthetic")
    assert len(table) == len(goals) and list(table) == goals
    assert table[-1] == goals[-1] and table[3:6] == goals[3:6]
    assert table[0] is not table[0]  # a fresh dict each time: callers cannot corrupt the table
    with pytest.raises(IndexError):
        table[len(goals)]
    # Another seed's bounds are another table (and a build).
    with pytest.raises(AssertionError, match="rebuilt"):
        goal_table(cat, "synthetic", seed=1)


def test_synthetic_vocabulary_makes_queries_selective(files, tmp_path):
    # A tiny uniform vocabulary put every word in every document, so every query matched every product and a
    # search benchmark measured nothing. Real 1k catalogue: commonest term in 44% of documents, a median goal
    # query matches 72% of products, some far fewer.
    import numpy as np

    from hero_gym.envs.webshop.search import SearchEngine

    cat = _load(files, tmp_path, use_cache=False, packed=True)
    engine = SearchEngine(cat, use_cache=False)
    df = np.diff(np.asarray(engine._bm25.scores["indptr"])) / len(cat)
    assert len(engine.vocab) > 50 * N and 0.2 < df.max() < 0.7
    matched = np.array([(engine.scores(g["instruction_text"]) > 0).mean() for g in build_goals(cat)[:200]])
    assert matched.min() < 0.1 and 0.3 < np.median(matched) < 0.9
