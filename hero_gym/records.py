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
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

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
    "reward", "turns", "termination_reason", "tokens_in", "tokens_out", "env_steps", "wall_time_s", "gen_time_s",
    "env_time_s", "started_at", "ended_at", "error", "dropped_tool_calls",
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
        self._held = None  # (FileLock, identity of the locked file) while lock() is held
        self.outcome = None  # set by hero_gym.evaluate.run_eval: what the invocation asked and found

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

    def check(self, config: dict) -> None:
        """Raise RunStoreError when the directory already holds a run whose identity (IDENTITY_KEYS) differs from
        `config`. Reads only, so a caller can validate everything before writing anything."""
        if not self.exists():
            return
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

    def init(self, config: dict) -> dict:
        """Create the run with `config`, or check that an existing run has the same identity (see IDENTITY_KEYS).

        Returns the stored config. Raises RunStoreError naming the differing fields when resuming with another config.
        """
        self.check(config)
        try:
            if self.exists():
                old = self.config
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
        except OSError as e:
            raise RunStoreError(f"cannot write to run directory {self.dir}: {e.strerror or e}") from None

    def _write_config(self, config: dict) -> None:
        # Write then rename, so a kill never leaves a half-written run.json.
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.config_path)

    # ----- reading ----------------------------------------------------------------------------------------------
    def _dicts(self) -> Iterator[dict]:
        """Each stored record as a dict, streamed line by line (a run of 100,000 episodes is never read whole).

        A torn last line is skipped silently (that is what a kill leaves); a broken line elsewhere is skipped with a
        warning, since it means the file was edited or two writers collided.
        """
        if not self.episodes_path.is_file():
            return
        with open(self.episodes_path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                complete = raw.endswith(b"\n")
                try:
                    d = json.loads(raw.decode("utf-8", errors="replace"))
                    if not isinstance(d, dict) or not _REQUIRED <= d.keys():
                        raise TypeError(f"not an episode record (needs {sorted(_REQUIRED)})")
                except (json.JSONDecodeError, TypeError) as e:
                    # A JSON object that parses but lacks only its newline is a finished record and is kept.
                    if complete:
                        warnings.warn(f"{self.episodes_path}:{lineno}: skipping unreadable record ({e})", stacklevel=3)
                    continue
                yield d

    def _resolved(self, project: Callable[[dict], Any]) -> dict[tuple, tuple[bool, Any]]:
        """key -> (is_error, project(record)) with one entry per episode key, in order of first appearance.

        Several lines can hold one key: an errored episode retried later (the later line wins, so a retry that
        succeeds replaces the error), or two writers that collided. Of several results the first is kept: a stored
        result is never replaced. Duplicated results are reported once, as a count.
        """
        out: dict[tuple, tuple[bool, Any]] = {}
        duplicates = 0
        for d in self._dicts():
            key = (d["env"], d.get("split"), d["task"], d["attempt"])
            is_error = d.get("error") is not None
            prev = out.get(key)
            if prev is None or prev[0]:
                out[key] = (is_error, project(d))
            elif not is_error:
                duplicates += 1
        if duplicates:
            warnings.warn(f"{self.episodes_path}: {duplicates} duplicate record(s) of episodes already stored "
                          "(two writers?); kept the first of each", stacklevel=3)
        return out

    def load(self, keep_trajectory: bool = True) -> list[EpisodeRecord]:
        """One record per episode key, in order of first appearance: its first result, or its latest error when it
        has no result (see :meth:`_resolved`). `keep_trajectory=False` drops the trajectories (far less memory)."""

        def build(d: dict) -> EpisodeRecord:
            if not keep_trajectory:
                d.pop("trajectory", None)
            return EpisodeRecord.from_dict(d)

        return [rec for _, rec in self._resolved(build).values()]

    def outcomes(self) -> dict[tuple, tuple[bool, str | None]]:
        """key -> (success, error) of every stored episode; light enough for runs of any size."""
        return {key: v for key, (_, v) in self._resolved(lambda d: (bool(d.get("success")), d.get("error"))).items()}

    def done_keys(self) -> set[tuple]:
        """Keys (env, split, task, attempt) of the episodes stored with a result. An episode that ended in error is
        not done: a resume runs it again."""
        return {key for key, (_, error) in self.outcomes().items() if error is None}

    def flat_rows(self) -> list[tuple]:
        """The FLAT_FIELDS of every episode (one tuple each, in that order), without building the trajectories.
        Text is made encodable (tables and Parquet need UTF-8; the stored trajectory keeps the text as it was)."""

        def row(d: dict) -> tuple:
            return tuple(_encodable(d.get(f)) for f in FLAT_FIELDS)

        return [r for _, r in self._resolved(row).values()]

    def __len__(self) -> int:
        return len(self.outcomes())

    # ----- writing ----------------------------------------------------------------------------------------------
    def repair(self) -> int:
        """Cut a torn last line off episodes.jsonl (keeping it if it parses); return the bytes removed."""
        if not self.episodes_path.is_file():
            return 0
        with open(self.episodes_path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            # Find the start of the last line without reading the whole file.
            pos, block = size, 1 << 16
            while pos > 0:
                start = max(0, pos - block)
                f.seek(start)
                chunk = f.read(pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    cut = start + nl + 1
                    break
                pos = start
            else:
                cut = 0
            f.seek(cut)
            tail = f.read()
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
        self._check_lock()
        try:
            if not self._repaired:
                self.dir.mkdir(parents=True, exist_ok=True)
                self.repair()
                self._repaired = True
            with open(self.episodes_path, "ab") as f:
                for rec in records:
                    if not isinstance(rec, EpisodeRecord):
                        raise TypeError(f"expected an EpisodeRecord, got {type(rec).__name__}")
                    f.write(json_line(rec.to_dict()))
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as e:
            raise RunStoreError(f"cannot write to run directory {self.dir}: {e.strerror or e}") from None

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive OS lock on the run (filelock on ``.lock``) for the duration: two writers would
        interleave and duplicate work.

        The lock belongs to the open file, not to the file's name: if someone deletes ``.lock`` while it is held, a
        second process could lock a new file of that name. So every append first checks that ``.lock`` is still the
        file this process locked; if not, it takes the new file's lock, or stops with RunStoreError when another
        writer holds it.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            held = _acquire(self.dir / LOCK)
        except OSError as e:
            raise RunStoreError(f"cannot write to run directory {self.dir}: {e.strerror or e}") from None
        if held is None:
            raise RunStoreError(f"another process is writing to {self.dir}; wait for it or use another --out")
        self._held = held
        try:
            yield self
        finally:
            lock, self._held = self._held, None
            lock[0].release()

    def _check_lock(self) -> None:
        if self._held is None:
            return
        lock, ident = self._held
        if _file_id(self.dir / LOCK) == ident:
            return
        fresh = _acquire(self.dir / LOCK)
        if fresh is None:
            raise RunStoreError(f"{self.dir / LOCK} was deleted while this process was writing and another process "
                                "now holds a new lock on the run; stopping so the two do not store the same episodes")
        lock.release()
        self._held = fresh
        warnings.warn(f"{self.dir / LOCK} was deleted while this process held it; locked it again", stacklevel=3)


_REQUIRED = frozenset({"env", "task", "attempt"})


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _acquire(path: Path):
    """(FileLock, identity of the locked file) or None when another process holds it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return (lock, _file_id(path))


def json_line(obj: dict) -> bytes:
    """One JSON line, UTF-8. Text a model returned may hold a lone surrogate ("\\ud800" is legal JSON and Python
    keeps it), which UTF-8 cannot encode: such a record is written with ASCII escapes and reads back the same."""
    try:
        return json.dumps(obj, default=str, ensure_ascii=False).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, default=str, ensure_ascii=True).encode("ascii") + b"\n"


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return printable(value)
    return value


def printable(text: str) -> str:
    """`text` safe to print on any terminal: lone surrogates and other unencodable characters escaped."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


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
        gen_time_s=float(traj.gen_time_s),
        env_time_s=float(traj.env_time_s),
        started_at=traj.started_at,
        ended_at=traj.ended_at,
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
        rows = store.flat_rows()
        if not rows:
            raise RunStoreError(f"{d} holds no episodes yet")
        label = run_label(d)
        if label in labels and labels[label] != str(Path(d).resolve()):
            label = str(d)  # two runs with the same name: fall back to the path given
        labels[label] = str(Path(d).resolve())
        df = pd.DataFrame.from_records(rows, columns=list(FLAT_FIELDS))
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
    with open(out, "wb") as f:
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
            f.write(json_line(example))
            n += 1
    if skipped:
        warnings.warn(f"{skipped} record(s) in {run_dir} have no stored trajectory; not exported", stacklevel=2)
    return n
