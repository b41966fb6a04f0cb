"""The run store: one directory per evaluation run, written so a killed run resumes without losing or repeating work.

Layout of a run directory::

    run.json         the run's configuration (env, split, policy, k, max_turns, seed, method, train_budget, ...)
    episodes.jsonl   one EpisodeRecord per line, appended and fsynced as each episode finishes

A process killed mid-write can leave a partial last line. Reading ignores it; the next append cuts it off before
writing, so complete records are never lost and a torn one never breaks a later read.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from hero_gym.types import EpisodeRecord, Trajectory

RUN_JSON = "run.json"
EPISODES = "episodes.jsonl"
LOCK = ".lock"

# Changing these between a run and its resume would mix episodes that mean different things. `k` and the task
# selection may change: episode seeds depend only on (seed, task, attempt), so a resume can widen or narrow a run.
IDENTITY_KEYS = (
    "env", "split", "policy", "max_turns", "seed", "method", "train_budget", "temperature", "max_new_tokens", "user",
)

# The flat (scalar) fields of an EpisodeRecord: what tables and Parquet hold.
FLAT_FIELDS = (
    "run", "env", "split", "task", "attempt", "seed", "policy", "method", "train_budget", "max_turns", "success",
    "reward", "turns", "termination_reason", "tokens_in", "tokens_out", "env_steps", "wall_time_s", "error",
    "dropped_tool_calls",
)


class RunStoreError(ValueError):
    """A run directory cannot be used as asked (config mismatch, not a run, locked by another writer)."""


def _version() -> str:
    try:
        from hero_gym import __version__

        return __version__
    except Exception:  # the store must work even from a half-installed tree
        return "unknown"


class RunStore:
    """Reads and appends the episodes of one run directory.

    >>> store = RunStore("results/my-run")
    >>> store.init({"env": "hero_gym/TauRetail-v0", "split": "test", "policy": "oracle", "k": 4})  # doctest: +SKIP
    >>> store.append(record)                                                                        # doctest: +SKIP
    >>> store.done_keys()                                                                           # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.episodes_path = self.dir / EPISODES
        self.config_path = self.dir / RUN_JSON
        self._repaired = False

    # ----- configuration ----------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.is_file()

    @property
    def config(self) -> dict:
        if not self.config_path.is_file():
            raise RunStoreError(f"{self.dir} is not a hero-gym run directory (no {RUN_JSON})")
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as e:
            raise RunStoreError(f"{self.config_path} is not valid JSON ({e}); fix or remove it") from None

    def init(self, config: dict) -> dict:
        """Create the run with `config`, or check that an existing run has the same identity (see IDENTITY_KEYS).

        Returns the stored config. Raises RunStoreError naming the differing fields when resuming with another config.
        """
        if self.exists():
            old = self.config
            diffs = [
                f"{key}: stored {old.get(key)!r}, asked {config.get(key)!r}"
                for key in IDENTITY_KEYS
                if key in config and old.get(key) != config.get(key)
            ]
            if diffs:
                raise RunStoreError(
                    f"{self.dir} holds a run with a different configuration ({'; '.join(diffs)}); "
                    "use another --out directory or the original settings"
                )
            # Non-identity fields (k, tasks, name...) record the latest invocation.
            merged = {**old, **{k: v for k, v in config.items() if k not in IDENTITY_KEYS and k != "created"}}
            if merged != old:
                self._write_config(merged)
            return merged
        self.dir.mkdir(parents=True, exist_ok=True)
        full = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "hero_gym_version": _version(), **config}
        self._write_config(full)
        return full

    def _write_config(self, config: dict) -> None:
        # Write then rename, so a kill never leaves a half-written run.json.
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.config_path)

    # ----- reading ----------------------------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, str, bool]]:
        """(line number, text, complete) for each line; `complete` is False only for a last line with no newline."""
        if not self.episodes_path.is_file():
            return
        with open(self.episodes_path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            if last and not raw:
                break
            yield i + 1, raw.decode("utf-8", errors="replace"), not last

    def load(self) -> list[EpisodeRecord]:
        """All complete records, first copy of each key only, in file order.

        A torn last line is skipped silently (that is what a kill leaves); a broken line elsewhere is skipped with a
        warning, since it means the file was edited or two writers collided.
        """
        out, seen = [], set()
        for lineno, text, complete in self._lines():
            try:
                rec = EpisodeRecord.from_dict(json.loads(text))
            except (json.JSONDecodeError, TypeError) as e:
                # A torn last line is what a kill leaves: skip it quietly. A JSON object that parses but lacks only
                # its newline is a finished record and is kept.
                if complete:
                    warnings.warn(f"{self.episodes_path}:{lineno}: skipping unreadable record ({e})", stacklevel=2)
                continue
            if rec.key in seen:
                warnings.warn(f"{self.episodes_path}:{lineno}: duplicate episode {rec.key}; keeping the first", stacklevel=2)
                continue
            seen.add(rec.key)
            out.append(rec)
        return out

    def done_keys(self) -> set[tuple]:
        """Keys (env, split, task, attempt) of the episodes already stored."""
        return {r.key for r in self.load()}

    def __len__(self) -> int:
        return len(self.load())

    # ----- writing ----------------------------------------------------------------------------------------------
    def repair(self) -> int:
        """Cut a torn last line off episodes.jsonl (keeping it if it parses); return the bytes removed."""
        if not self.episodes_path.is_file():
            return 0
        with open(self.episodes_path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return 0
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            try:
                json.loads(tail)
            except ValueError:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
                return len(tail)
            f.write(b"\n")  # a complete record that only lacked its newline
            f.flush()
            os.fsync(f.fileno())
            return 0

    def append(self, records: EpisodeRecord | Iterable[EpisodeRecord]) -> None:
        """Append record(s), each as one line, flushed and fsynced before returning."""
        if isinstance(records, EpisodeRecord):
            records = [records]
        if not self._repaired:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.repair()
            self._repaired = True
        with open(self.episodes_path, "ab") as f:
            for rec in records:
                if not isinstance(rec, EpisodeRecord):
                    raise TypeError(f"expected an EpisodeRecord, got {type(rec).__name__}")
                line = json.dumps(rec.to_dict(), default=str, ensure_ascii=False)
                f.write(line.encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock on the run for the duration (two writers would interleave and duplicate work)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunStoreError(f"another process is writing to {self.dir}; wait for it or use another --out") from None
            yield self
        finally:
            os.close(fd)  # closing releases the lock


# ----- building records ------------------------------------------------------------------------------------------
def record_from_trajectory(
    traj: Trajectory,
    *,
    attempt: int,
    policy: str,
    max_turns: int | None = None,
    method: str | None = None,
    train_budget: int | None = None,
    run: str | None = None,
    keep_trajectory: bool = True,
) -> EpisodeRecord:
    """The EpisodeRecord of one finished episode."""
    return EpisodeRecord(
        env=traj.env_id,
        split=traj.split,
        task=int(traj.task_index),
        attempt=int(attempt),
        seed=traj.seed,
        policy=policy,
        success=bool(traj.success),
        reward=float(traj.reward),
        turns=traj.num_turns,
        termination_reason=traj.termination_reason,
        tokens_in=int(traj.tokens_in),
        tokens_out=int(traj.tokens_out),
        env_steps=int(traj.env_steps),
        wall_time_s=float(traj.wall_time_s),
        max_turns=max_turns,
        method=method,
        train_budget=train_budget,
        run=run,
        error=traj.error,
        dropped_tool_calls=int(traj.dropped_tool_calls),
        trajectory=traj.to_dict() if keep_trajectory else None,
    )


# ----- reading many runs -----------------------------------------------------------------------------------------
def run_label(run_dir: str | os.PathLike) -> str:
    """A short name for a run in tables and legends: run.json's "name" if set, else the directory name."""
    store = RunStore(run_dir)
    if store.exists():
        name = store.config.get("name")
        if name:
            return str(name)
    return Path(run_dir).resolve().name


def load_frame(run_dirs: Iterable[str | os.PathLike]):
    """The flat fields of every record of `run_dirs` as one pandas DataFrame, with a `run` column (the run label).

    Raises RunStoreError for a directory that is not a run or holds no episodes.
    """
    import pandas as pd

    frames = []
    labels: dict[str, str] = {}
    for d in run_dirs:
        store = RunStore(d)
        if not store.dir.is_dir():
            raise RunStoreError(f"run directory {d} does not exist")
        if not store.exists() and not store.episodes_path.is_file():
            raise RunStoreError(f"{d} is not a hero-gym run directory (no {RUN_JSON} or {EPISODES})")
        recs = store.load()
        if not recs:
            raise RunStoreError(f"{d} holds no episodes yet")
        label = run_label(d)
        if label in labels and labels[label] != str(Path(d).resolve()):
            label = str(d)  # two runs with the same name: fall back to the path given
        labels[label] = str(Path(d).resolve())
        rows = [{f: getattr(r, f) for f in FLAT_FIELDS} for r in recs]
        df = pd.DataFrame(rows, columns=list(FLAT_FIELDS))
        df["run"] = label
        frames.append(df)
    if not frames:
        raise RunStoreError("no run directories given")
    df = pd.concat(frames, ignore_index=True)
    df["success"] = df["success"].astype(bool)
    return df


def export_parquet(run_dirs: Iterable[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike) -> int:
    """Write the flat fields of the runs' records to a Parquet file (pyarrow); return the number of rows."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    df = load_frame(run_dirs)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, engine="pyarrow", index=False)
    return len(df)


def _messages_from_turns(traj: dict) -> list[dict]:
    """A plain user/assistant conversation rebuilt from the turns, for trajectories stored without messages."""
    msgs = []
    if traj.get("initial_observation"):
        msgs.append({"role": "user", "content": traj["initial_observation"]})
    for t in traj.get("turns", []):
        msgs.append({"role": "assistant", "content": t.get("action", "")})
        if t.get("observation"):
            msgs.append({"role": "user", "content": t["observation"]})
    return msgs


def _chat_messages(messages: list[dict]) -> list[dict]:
    """Messages as TRL/verl chat datasets expect them: tool-call arguments as objects, not JSON strings."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                c = json.loads(json.dumps(c))  # deep copy
                fn = c.get("function", c)
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except json.JSONDecodeError:
                        pass  # keep what the model wrote; it is the training target as generated
                calls.append(c)
            m["tool_calls"] = calls
        out.append(m)
    return out


def export_chat_jsonl(run_dir: str | os.PathLike, out: str | os.PathLike, only_success: bool = False) -> int:
    """Write each stored episode as one chat example ``{"messages", "tools", ...metadata}`` (TRL / verl SFT format).

    The conversation ends at the agent's last message; tool-call arguments are JSON objects.

    Returns the number of examples written. Records stored without a trajectory are skipped with a warning.
    """
    store = RunStore(run_dir)
    if not store.dir.is_dir() or not store.episodes_path.is_file():
        raise RunStoreError(f"{run_dir} is not a hero-gym run directory with episodes")
    n = skipped = 0
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for rec in store.load():
            if only_success and not rec.success:
                continue
            if not rec.trajectory:
                skipped += 1
                continue
            msgs = list(rec.trajectory.get("messages") or _messages_from_turns(rec.trajectory))
            # End on the agent's last message: what the env answered after it is no training target.
            while msgs and msgs[-1].get("role") != "assistant":
                msgs.pop()
            example = {
                "messages": _chat_messages(msgs),
                "tools": rec.trajectory.get("tools"),
                "env": rec.env, "split": rec.split, "task": rec.task, "attempt": rec.attempt, "seed": rec.seed,
                "reward": rec.reward, "success": rec.success, "policy": rec.policy,
            }
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
            n += 1
    if skipped:
        warnings.warn(f"{skipped} record(s) in {run_dir} have no stored trajectory; not exported", stacklevel=2)
    return n
