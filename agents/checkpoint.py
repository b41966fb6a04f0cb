"""Checkpoints that resume bit-for-bit: model, teacher/reference copies, optimiser, schedule, step and every RNG.

A checkpoint is one directory written under a temporary name and renamed into place, so a run killed while saving
keeps its previous checkpoint intact.

Loading never runs code from the file: checkpoints often sit on shared disks, and a pickle can execute anything.
The state is read with ``torch.load(weights_only=True)``, which accepts only tensors and plain containers and
numbers, so everything saved is kept to those (the NumPy RNG state is stored as a tensor and plain values); the
step and config are JSON (``meta.json``). A file that needs more is refused with an error, never executed.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"


def rng_state() -> dict:
    """Snapshot of the Python, NumPy and torch (CPU and CUDA) generators, in types a weights-only load accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "gauss": float(gauss)}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    if isinstance(n, dict):
        n = (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    np.random.set_state(n)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | os.PathLike, state: dict, meta: dict) -> Path:
    """Write `state` (tensors, optimiser dicts, RNG) and `meta` (JSON: step, config) atomically to `directory`."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp.", dir=target.parent))
    try:
        torch.save(state, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        old = target.with_name(target.name + ".old")
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(target, old)
        os.rename(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict, dict]:
    """Return ``(state, meta)`` of a checkpoint directory; a clear error when it is missing or incomplete."""
    d = Path(directory)
    if not (d / STATE_FILE).is_file() or not (d / META_FILE).is_file():
        old = d.with_name(d.name + ".old")
        if (old / STATE_FILE).is_file():  # killed between the two renames of save_checkpoint
            d = old
        else:
            raise FileNotFoundError(f"no checkpoint in {directory} (expected {STATE_FILE} and {META_FILE})")
    meta = json.loads((d / META_FILE).read_text())
    try:
        state = torch.load(d / STATE_FILE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{d / STATE_FILE} holds more than tensors and plain values, so loading it could run code; it was not "
            f"loaded ({first[:200]}). Only load checkpoints written by hero-gym's save_checkpoint."
        ) from None
    return state, meta


def _as_tuples(value):
    """random.setstate wants tuples; a state that went through a container round trip may hold lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value
