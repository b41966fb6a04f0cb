"""Progress output that suits where it goes: a tqdm bar on a terminal, and elsewhere (a log file, CI, ``nohup``) one
plain line every `interval` seconds, because a bar redrawn with carriage returns becomes thousands of fragments in
a file.

``HERO_GYM_PROGRESS_INTERVAL`` sets the seconds between lines (default 30); ``HERO_GYM_PROGRESS=bar`` or ``=lines``
forces one style.
"""

from __future__ import annotations

import os
import sys
import time

INTERVAL_ENV = "HERO_GYM_PROGRESS_INTERVAL"
STYLE_ENV = "HERO_GYM_PROGRESS"
DEFAULT_INTERVAL_S = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _is_terminal(file) -> bool:
    style = os.environ.get(STYLE_ENV, "").strip().lower()
    if style in ("bar", "lines"):
        return style == "bar"
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int | float | None = None, *, desc: str = "", unit: str = "it", initial: int = 0,
                 disable: bool = False, unit_scale: bool = False, file=None, interval: float | None = None):
    """A tqdm bar when `file` (default stderr) is a terminal, else a :class:`LineProgress`; both take ``update``,
    ``set_postfix``, ``write`` and ``close`` and work as context managers."""
    file = file if file is not None else sys.stderr
    if not disable and not _is_terminal(file):
        return LineProgress(total, desc=desc, unit=unit, initial=initial, unit_scale=unit_scale, file=file,
                            interval=_interval() if interval is None else interval)
    return _throttled_tqdm()(total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                             unit_scale=unit_scale, file=file, dynamic_ncols=True)


def _throttled_tqdm():
    from tqdm.auto import tqdm

    class Bar(tqdm):
        """tqdm whose postfix changes redraw at most every `mininterval`: turns of a scripted policy change it
        thousands of times a second, and tqdm redraws on every set_postfix."""

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh=False, **kwargs)
            if refresh:
                self._throttled_refresh()

        def set_postfix_str(self, s="", refresh=True):
            super().set_postfix_str(s, refresh=False)
            if refresh:
                self._throttled_refresh()

        def _throttled_refresh(self):
            if self.disable:  # a disabled tqdm has no clock or print time
                return
            now = self._time()
            if now - self.last_print_t >= self.mininterval:
                self.last_print_t = now
                self.refresh()

    return Bar


def _amount(x: float, scale: bool) -> str:
    if not scale:
        return f"{x:g}" if isinstance(x, float) else str(x)
    for prefix in ("", "k", "M", "G"):
        if abs(x) < 1000:
            return f"{x:.1f}{prefix}" if prefix else f"{x:.0f}"
        x /= 1000
    return f"{x:.1f}T"


class LineProgress:
    """The bar's information as one line at most every `interval` seconds, and a last line at close."""

    def __init__(self, total=None, *, desc="", unit="it", initial=0, unit_scale=False, file=None, interval=30.0):
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.n = self.start_n = initial
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        done = _amount(self.n, self.unit_scale)
        if self.total:
            done += f"/{_amount(self.total, self.unit_scale)} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            done += f" {self.unit}"
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {done}" if self.desc else done, f"{elapsed:.0f}s",
                 f"{_amount(rate, True)} {self.unit}/s"]
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            print(self.line(), file=self.file, flush=True)

    def update(self, n=1) -> None:
        self.n += n
        self._maybe_print()

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())
        self._maybe_print()

    def set_postfix_str(self, s="", refresh=True) -> None:
        self.postfix = s
        self._maybe_print()

    def refresh(self) -> None:
        self._maybe_print()

    def write(self, s: str, file=None) -> None:
        print(s, file=file if file is not None else self.file, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._maybe_print(force=True)
