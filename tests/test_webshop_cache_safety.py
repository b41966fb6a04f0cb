"""WebShop caches cannot run code: planted pickles in the catalogue cache, its product blobs, the search index and
the goal table are refused (and the cache rebuilt), never unpickled."""

import pickle

import numpy as np
import pytest

from hero_gym.envs.webshop import catalogue as cat_mod
from hero_gym.envs.webshop.cache_files import read_npz
from hero_gym.envs.webshop.catalogue import load_catalogue
from hero_gym.envs.webshop.goals import build_goals, goal_table
from hero_gym.envs.webshop.search import INDEX_FORMAT, SearchEngine
from hero_gym.envs.webshop.synthetic import write_synthetic_attributes, write_synthetic_catalogue

N = 60


class _Payload:
    """Unpickling this creates ``marker``: the stand-in for arbitrary code in a crafted cache file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(autouse=True)
def no_noun_tagging(monkeypatch):
    monkeypatch.setattr(cat_mod, "NOUN_PRECOMPUTE_ALL_MAX", 0)
    monkeypatch.setattr(cat_mod, "_loaded", {})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("wssafe")
    return (write_synthetic_catalogue(d / "items.json", N, seed=11),
            write_synthetic_attributes(d / "attrs.json", N, seed=11, instructed=0.8))


def _load(files, cache, packed):
    cat_mod._loaded.clear()
    return load_catalogue("full", items_path=files[0], attrs_path=files[1], cache_dir=cache, packed=packed)


def _plant_npz(path, marker):
    # What an attacker with write access to the cache folder can put there: object arrays (pickles) in an .npz.
    np.savez(path, __meta__=np.array([_Payload(marker)], dtype=object), prices=np.array([_Payload(marker)]))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("how", ["npz", "raw pickle"])
def test_planted_catalogue_cache_is_rebuilt_not_unpickled(files, tmp_path, packed, how):
    marker = tmp_path / "pwned"
    first = _load(files, tmp_path / "c", packed)
    (cache,) = (tmp_path / "c").glob("catalogue-*.npz")
    if how == "npz":
        with open(cache, "wb") as f:
            _plant_npz(f, marker)
    else:
        cache.write_bytes(pickle.dumps(_Payload(marker)))
    assert read_npz(cache) is None
    again = _load(files, tmp_path / "c", packed)
    assert not marker.exists()
    assert list(again.products) == list(first.products) and again.prices == first.prices
    assert read_npz(cache) is not None  # rebuilt and rewritten


def test_planted_product_blob_is_an_error_not_code(files, tmp_path):
    marker = tmp_path / "pwned"
    cat = _load(files, tmp_path / "c", True)
    (blobs,) = (tmp_path / "c").glob("catalogue-*.blobs")
    start, end = int(cat.products.starts[0]), int(cat.products.ends[0])
    evil = pickle.dumps(_Payload(marker))
    assert len(evil) <= end - start
    data = bytearray(blobs.read_bytes())
    data[start:end] = evil.ljust(end - start, b".")  # same size, so the offsets still fit
    blobs.write_bytes(bytes(data))
    again = _load(files, tmp_path / "c", True)
    with pytest.raises(ValueError):
        again.products.decode(0)
    assert not marker.exists()
    assert again.products[1] == cat.products[1]


def test_planted_search_index_is_rebuilt_not_unpickled(files, tmp_path):
    marker = tmp_path / "pwned"
    cat = _load(files, tmp_path / "c", True)
    fresh = SearchEngine(cat)
    folder = cat.cache_path("search", INDEX_FORMAT)
    assert (folder / "meta.json").is_file()
    for name in ("data", "indices", "indptr"):
        np.save(folder / f"{name}.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    (folder / "meta.pkl").write_bytes(pickle.dumps(_Payload(marker)))  # the old format's file name
    again = SearchEngine(cat)
    assert not marker.exists()
    query = cat.products[3]["Title"]
    assert np.array_equal(again.scores(query), fresh.scores(query)) and again.search(query)
    # The planted folder was replaced by the rebuilt index, which the next start memory-maps.
    assert isinstance(SearchEngine(cat)._bm25.scores["data"], np.memmap) and not marker.exists()


def test_planted_goal_table_is_rebuilt_not_unpickled(files, tmp_path):
    marker = tmp_path / "pwned"
    cat = _load(files, tmp_path / "c", True)
    goals = build_goals(cat, "synthetic")
    (table,) = (tmp_path / "c").glob("goals-*-synthetic-seed0.npz")
    with open(table, "wb") as f:
        _plant_npz(f, marker)
    assert list(goal_table(cat, "synthetic")) == goals
    assert not marker.exists()
