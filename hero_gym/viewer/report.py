"""Builds the one-file HTML report of ``hero-gym view``: the page template with the runs' data embedded.

The page needs no server and no network. Run-level data (summaries, one small row per episode, training logs) is
embedded as JSON; episode details and credit records, the bulk, are embedded as gzip-compressed, base64-encoded
chunks of ``hero_gym.viewer.data.CHUNK_EPISODES`` episodes (or one training step) that the page decompresses with the browser's own
``DecompressionStream`` only when one of them is opened. So a 10,000-episode run opens as fast as its run page
renders, and the file stays a fraction of the JSONL it comes from (sizes: results/viewer.md).
"""

from __future__ import annotations

import base64
import datetime as _dt
import gzip
import json
import math
from importlib import resources
from pathlib import Path
from typing import Sequence

from hero_gym.viewer.data import load_source


def _clean(obj):
    """`obj` with NaN/inf as None: JSON (and the browser's JSON.parse) has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _pack(obj) -> str:
    data = json.dumps(_clean(obj), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(data, 9, mtime=0)).decode("ascii")  # mtime=0: same runs, same bytes


def build_payload(run_dirs: Sequence[str | Path]) -> tuple[dict, list[str]]:
    """(page data, compressed chunks) of the run directories (read by hero_gym.viewer.data.load_source)."""
    blobs: list[str] = []

    def pack(obj) -> int:
        blobs.append(_pack(obj))
        return len(blobs) - 1

    runs, sources = [], []
    for d in run_dirs:
        s = load_source(d, pack)
        if s["kind"] == "train" and not (s["runs"] or s["credit"] or s["log"]):
            raise ValueError(f"{d} is a training run with nothing to show yet (no log, credit or eval records)")
        ids = list(range(len(runs), len(runs) + len(s["runs"])))
        runs += s.pop("runs")
        sources.append({**s, "runs": ids})
    from hero_gym import __version__

    data = {"sources": sources, "runs": runs, "version": __version__,
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return data, blobs


def _script_json(obj) -> str:
    # Inside <script>, "</script" or "<!--" would change how the page is parsed; "<" only occurs inside JSON
    # strings, where the escape \u003c is the same character.
    return json.dumps(_clean(obj), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def render_html(data: dict, blobs: list[str], title: str) -> str:
    template = resources.files("hero_gym.viewer").joinpath("template.html").read_text(encoding="utf-8")
    chunk_tags = "\n".join(f'<script type="application/octet-stream" id="z{i}">{b}</script>' for i, b in enumerate(blobs))
    esc = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (template.replace("{{TITLE}}", esc).replace("{{DATA}}", _script_json({**data, "title": title}))
            .replace("{{CHUNKS}}", chunk_tags))


def build_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the report of one run (or two, side by side) to `out`; return its path."""
    if not 1 <= len(run_dirs) <= 2:
        raise ValueError(f"give one run directory, or two to see them side by side; got {len(run_dirs)}")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must name an .html file, got {str(out)!r}")
    data, blobs = build_payload(run_dirs)
    title = " vs ".join(s["label"] for s in data["sources"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data, blobs, f"hero-gym: {title}"), encoding="utf-8")
    return out
