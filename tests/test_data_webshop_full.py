"""`hero-gym data download webshop-full`: the manifest's documented identities, downloads from a local mirror with
tiny stand-in files (pinned and unpinned entries), the errors for wrong files, and `load_catalogue("full")` reading
its inputs through the data layer."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import shutil
import threading
import urllib.parse
import warnings
from pathlib import Path

import pytest

from hero_gym.envs.webshop.catalogue import load_catalogue
from hero_gym.envs.webshop.synthetic import write_synthetic_attributes, write_synthetic_catalogue
from hero_gym import data, download as dl
from hero_gym.data import DataError, MissingDataError, UnpinnedDataWarning
from hero_gym.download import check, data_main, download, verify

DATASET = "webshop-full"
ITEMS, ATTRS, HUMAN = "webshop/items_shuffle.json", "webshop/items_ins_v2.json", "webshop/items_human_ins.json"
N_PRODUCTS = 12


# ------------------------------------------------------------------------------------------ the real manifest


def test_manifest_records_the_documented_identities():
    assert DATASET in data.list_datasets()
    by = data.manifest(DATASET)["by_path"]
    assert set(by) == {ITEMS, ATTRS, HUMAN}

    human = by[HUMAN]
    assert human["sha256"] == "cf78667548a71786e1d9049c24b802e48e1084ad4bb021cae56ce1f6d96954a3"
    assert human["bytes"] == 5_137_548 and data.is_pinned(human)
    assert human["url"] == ("https://raw.githubusercontent.com/princeton-nlp/WebShop/"
                            "64fa2a5c15c7daa698b9ac93f5bb5437b634c9bd/baseline_models/data/items_human_ins.json")

    # the two big files: full sha256 unknown, so null (never guessed), with size, known digest ends and a note
    for rel, size, prefix, suffix, drive in [
        (ITEMS, 5_479_720_229, "2ef591d6", "a6c8", "1A2whVgOO0euk5O13n2iYDM0bQRkkRduB"),
        (ATTRS, 186_295_270, "1d36af47", "447e", "1s2j6NgHljiZzQNL3veZaAiyW_qDEgBNi"),
    ]:
        e = by[rel]
        assert e["sha256"] is None and not data.is_pinned(e)
        assert (e["bytes"], e["sha256_prefix"], e["sha256_suffix"]) == (size, prefix, suffix)
        assert e["gdrive_id"] == drive and f"id={drive}" in e["url"] and "unpinned" in e["note"]


def test_list_shows_the_dataset_and_its_unpinned_files(capsys):
    assert data_main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(DATASET))
    assert "3 files" in line and "5671.2 MB" in line and "2 unpinned" in line


def test_verify_all_skips_datasets_never_downloaded(tmp_path, capsys):
    assert data_main(["verify", "--dest", str(tmp_path)]) == 0  # nothing present: nothing wrong
    out = capsys.readouterr().out
    assert f"{DATASET}: not downloaded (0/3 files)" in out
    assert data_main(["verify", DATASET, "--dest", str(tmp_path)]) == 1  # named explicitly: missing is an error


def test_mirror_paths():
    by = data.manifest(DATASET)["by_path"]
    # no mirror: the upstream URLs themselves
    assert dl._source_url(by[ITEMS], None) == by[ITEMS]["url"]
    # a mirror keeps upstream paths, but a Drive URL has none (the file is named in the query): data-dir layout
    assert dl._source_url(by[ITEMS], "http://m/") == "http://m/webshop/items_shuffle.json"
    assert dl._source_url(by[ATTRS], "http://m") == "http://m/webshop/items_ins_v2.json"
    assert dl._source_url(by[HUMAN], "http://m") == (
        "http://m/princeton-nlp/WebShop/64fa2a5c15c7daa698b9ac93f5bb5437b634c9bd/baseline_models/data/"
        "items_human_ins.json")


# ------------------------------------------------------------------------------------------ stand-in files


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _human_ins() -> bytes:
    goals = {f"B{i:09d}": [{"asin": f"B{i:09d}", "instruction": f"i want product {i}", "attributes": ["x"],
                            "options": [], "instruction_attributes": ["x"], "instruction_options": []}]
             for i in (1, 4)}
    return json.dumps(goals, indent=1).encode()


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Small files in the webshop-full layout, a manifest for them shaped like the real one (same URLs, human-ins
    pinned, the others unpinned with real size and digest ends), patched in for 'webshop-full'."""
    src = tmp_path / "src"
    (src / "webshop").mkdir(parents=True)
    write_synthetic_catalogue(src / ITEMS, N_PRODUCTS)
    write_synthetic_attributes(src / ATTRS, N_PRODUCTS, instructed=0.5)
    (src / HUMAN).write_bytes(_human_ins())

    real = data.manifest(DATASET)
    files = []
    for entry in real["files"]:
        body = (src / entry["path"]).read_bytes()
        e = {k: v for k, v in entry.items() if k != "sha256_prefix" and k != "sha256_suffix"}
        e["bytes"] = len(body)
        if data.is_pinned(entry):
            e["sha256"] = _sha(body)
        else:
            e["sha256_prefix"], e["sha256_suffix"] = _sha(body)[:8], _sha(body)[-4:]
        files.append(e)
    fake = {"name": DATASET, "files": files, "by_path": {f["path"]: f for f in files}}
    orig = data.manifest

    def patched(name):
        return fake if name == DATASET else orig(name)

    monkeypatch.setattr(data, "manifest", patched)
    monkeypatch.setattr(dl, "manifest", patched)
    return src, fake


class _Mirror:
    """http.server on 127.0.0.1 serving `root`; records the request paths."""

    def __init__(self, root: Path):
        self.root, self.paths = root, []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.paths.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _served_at(entry: dict, root: Path) -> Path:
    """Where a mirror holds `entry`: its upstream URL path, or the data-dir path for Drive files."""
    url = urllib.parse.urlsplit(entry["url"])
    return root / (entry["path"] if url.query else url.path.lstrip("/"))


@pytest.fixture
def mirror(stand_in, tmp_path):
    src, fake = stand_in
    root = tmp_path / "mirror"
    for e in fake["files"]:
        target = _served_at(e, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / e["path"], target)
    server = _Mirror(root)
    yield server
    server.close()


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------ download + verify


def test_cli_download_from_local_mirror_then_verify(stand_in, mirror, tmp_path, capsys):
    src, fake = stand_in
    dest = tmp_path / "data"
    assert data_main(["verify", DATASET, "--dest", str(dest)]) == 1
    capsys.readouterr()

    assert data_main(["download", DATASET, "--dest", str(dest), "--base-url", mirror.url]) == 0
    out = capsys.readouterr().out
    assert "3 file(s) written" in out and "2 unpinned file(s) checked by size and partial sha256 only" in out
    assert "all checksums verified" not in out  # not claimed while two files are unpinned
    for rel in (ITEMS, ATTRS):  # each unpinned file is reported with the sha256 it computed
        assert f"full sha256 {_sha((src / rel).read_bytes())}" in out
    for e in fake["files"]:
        assert (dest / e["path"]).read_bytes() == (src / e["path"]).read_bytes()
    assert sorted(mirror.paths) == sorted([
        "/princeton-nlp/WebShop/64fa2a5c15c7daa698b9ac93f5bb5437b634c9bd/baseline_models/data/items_human_ins.json",
        "/webshop/items_ins_v2.json", "/webshop/items_shuffle.json"])
    assert _leftovers(dest) == []

    assert verify(DATASET, dest) == []
    assert {rel: status for rel, status, _ in check(DATASET, dest)} == {HUMAN: "ok", ITEMS: "unpinned",
                                                                       ATTRS: "unpinned"}
    assert data_main(["verify", DATASET, "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "ok (3/3 files present) (2 unpinned file(s)" in out and out.count("\n  unpinned ") == 2

    before = len(mirror.paths)
    assert download(DATASET, dest, base_url=mirror.url) == []  # valid files are kept, nothing fetched
    assert len(mirror.paths) == before


def test_download_without_mirror_names_the_drive_url(stand_in, tmp_path, monkeypatch):
    fetched = []

    def fake_fetch(url, tmp, what, **_):
        fetched.append(url)
        raise DataError(f"download of {what} failed: cannot reach {url}")

    monkeypatch.setattr(dl, "_fetch_to", fake_fetch)
    with pytest.raises(DataError, match="cannot reach"):
        download(DATASET, tmp_path)
    assert fetched[0] == data.manifest(DATASET)["by_path"][HUMAN]["url"]
    monkeypatch.setattr(dl, "_fetch_to", lambda url, tmp, what, **_: fetched.append(url) or
                        tmp.write_bytes(_human_ins()))
    with pytest.raises(DataError):  # the stand-in human file fits; the Drive files get the wrong bytes
        download(DATASET, tmp_path)
    assert fetched[-1].startswith("https://drive.usercontent.google.com/download?id=")


@pytest.mark.parametrize("rel,body,pattern", [
    # unpinned: same size, other bytes -> the known digest ends catch it
    (ITEMS, None, r"checksum mismatch for downloaded webshop/items_shuffle\.json: expected sha256 "
                  r"[0-9a-f]{8}…[0-9a-f]{4} \(only these digits are known\), got [0-9a-f]{64}"),
    # unpinned: wrong size -> rejected before hashing; an HTML page (Drive quota/confirm page) is named as such
    (ATTRS, b"<!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>",
     r"size mismatch for downloaded webshop/items_ins_v2\.json: expected \d+ bytes, got 70 \(the server sent "
     r"an HTML page"),
    # pinned: full sha256
    (HUMAN, b'{"B000000001": []}', r"checksum mismatch for downloaded webshop/items_human_ins\.json: expected "
                                   r"sha256 [0-9a-f]{64}, got [0-9a-f]{64}"),
])
def test_wrong_file_is_rejected_and_nothing_is_left(stand_in, mirror, tmp_path, rel, body, pattern, capsys):
    src, fake = stand_in
    served = _served_at(fake["by_path"][rel], mirror.root)
    if body is None:
        good = served.read_bytes()
        body = good.replace(b"B000000001", b"B000000099", 1)
        assert len(body) == len(good) and _sha(body)[:8] != _sha(good)[:8]
    served.write_bytes(body)
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=pattern):
        download(DATASET, dest, base_url=mirror.url)
    assert not (dest / rel).exists() and _leftovers(dest) == []
    assert data_main(["download", DATASET, "--dest", str(dest), "--base-url", mirror.url]) == 1
    assert "nothing was written" in capsys.readouterr().err


def test_verify_reports_a_corrupted_unpinned_copy(stand_in, mirror, tmp_path, capsys):
    dest = tmp_path / "data"
    download(DATASET, dest, base_url=mirror.url)
    p = dest / ITEMS
    p.write_bytes(p.read_bytes()[:-1] + b" ")  # same size, other digest
    assert [s for _, s, _ in check(DATASET, dest)].count("mismatch") == 1
    assert data_main(["verify", DATASET, "--dest", str(dest)]) == 1
    assert "checksum mismatch for" in capsys.readouterr().out
    p.write_bytes(b"[]")
    assert re.search(r"size mismatch for .*items_shuffle\.json: expected \d+ bytes, got 2", verify(DATASET, dest)[0])


def test_unpinned_entry_needs_a_size(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match="neither a sha256 nor a size"):
        data.check_file({"path": "x", "sha256": None}, f)


# ------------------------------------------------------------------------------------------ load_catalogue("full")


def test_load_catalogue_full_reads_through_the_data_layer(stand_in, mirror, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    download(DATASET, dest, base_url=mirror.url)
    monkeypatch.setenv(data.ENV_VAR, str(dest))
    with pytest.warns(UnpinnedDataWarning, match="unpinned") as caught:
        cat = load_catalogue("full", cache_dir=tmp_path / "cache", use_cache=False)
    assert {str(w.message).split(" of dataset")[0] for w in caught} == {str(dest / ITEMS), str(dest / ATTRS)}
    assert cat.setting == "full" and len(cat) == N_PRODUCTS
    assert cat.sources == {"items": str(dest / ITEMS), "attrs": str(dest / ATTRS), "human_ins": str(dest / HUMAN)}
    assert sorted(p["asin"] for p in cat.goal_products("human")) == ["B000000001", "B000000004"]
    assert cat.product("B000000004")["instructions"][0]["instruction"] == "i want product 4"


def test_load_catalogue_full_rejects_a_corrupted_optional_file(stand_in, mirror, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    download(DATASET, dest, base_url=mirror.url)
    (dest / HUMAN).write_bytes(b"{}")  # the human instructions are optional, but a wrong copy is not ignored
    monkeypatch.setenv(data.ENV_VAR, str(dest))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpinnedDataWarning)
        with pytest.raises(DataError, match=r"checksum mismatch .*items_human_ins\.json.*hero-gym data download "
                                            r"webshop-full"):
            load_catalogue("full", cache_dir=tmp_path / "cache", use_cache=False)
        (dest / HUMAN).unlink()  # absent: loads without human goals
        cat = load_catalogue("full", cache_dir=tmp_path / "cache", use_cache=False)
    assert cat.sources["human_ins"] == "None" and list(cat.goal_products("human")) == []


def test_load_catalogue_full_without_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(MissingDataError, match=r"missing data file webshop/items_shuffle\.json.*"
                                               r"hero-gym data download webshop-full"):
        load_catalogue("full", cache_dir=tmp_path / "cache", use_cache=False)
