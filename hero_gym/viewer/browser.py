"""Headless Chromium for checking and picturing reports: the DOM after the page's script ran, and screenshots.

Used by the viewer's tests and benchmarks (the report itself needs no browser to be written). Chromium is Debian's
``chromium`` package (``apt-get install chromium``); ``$HERO_GYM_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "install Debian's chromium package (apt-get update && apt-get install -y chromium) or set HERO_GYM_CHROMIUM"

# Offline, no first-run work, a throw-away profile: what a sandboxed CI container allows.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    env = os.environ.get("HERO_GYM_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(page: str | Path, fragment: str, extra: list[str], *, budget_ms: int, timeout_s: float) -> str:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium found: {INSTALL_HINT}")
    url = Path(page).resolve().as_uri() + (fragment if not fragment or fragment.startswith("#") else "#" + fragment)
    with tempfile.TemporaryDirectory(prefix="hero-gym-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def dump_dom(page: str | Path, fragment: str = "", *, budget_ms: int = 5000, timeout_s: float = 120) -> str:
    """The page's DOM as HTML after its scripts ran (`fragment` like "#ep/0/3/1" picks the view)."""
    return _run(page, fragment, ["--dump-dom"], budget_ms=budget_ms, timeout_s=timeout_s)


def screenshot(page: str | Path, out_png: str | Path, fragment: str = "", *, size: tuple[int, int] = (1400, 1000),
               budget_ms: int = 5000, timeout_s: float = 120) -> Path:
    """A PNG of the page's viewport."""
    out = Path(out_png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(page, fragment, [f"--screenshot={out}", f"--window-size={size[0]},{size[1]}"], budget_ms=budget_ms,
         timeout_s=timeout_s)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out
