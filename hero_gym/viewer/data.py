"""What a report shows, read from run directories: evaluation runs (a RunStore) and training runs.

A *source* is one directory given on the command line. An evaluation run directory (run.json / episodes.jsonl)
is one run. A training run directory (train_log.jsonl, config.json) brings its step log, its credit records
(agents/credit_log.py) and every evaluation store under eval/ as runs. Episodes are reduced to what a reader looks
at: flat fields for the run page, and per episode the instruction and each turn (action, observation, invalid mark,
turn reward) with the reward breakdown; token ids, tool schemas and the repeated system prompt are left out
(the system prompt is kept once per run).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

from hero_gym.records import EPISODES, FLAT_FIELDS, RUN_JSON, RunStore, RunStoreError, run_label
from hero_gym.types import EpisodeRecord

CHUNK_EPISODES = 100
"""Episodes per compressed chunk of the page: opening an episode decompresses its chunk only."""

MAX_TEXT_CHARS = 50_000
"""Longest text shown for one message; longer ones keep head and tail (the run files keep everything)."""


def _cut(text) -> str:
    text = "" if text is None else str(text)
    if len(text) <= MAX_TEXT_CHARS:
        return text
    half = MAX_TEXT_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters not shown ...]\n{text[-half:]}"


def is_eval_run(path: Path) -> bool:
    return (path / RUN_JSON).is_file() or (path / EPISODES).is_file()


def is_train_run(path: Path) -> bool:
    return (path / "train_log.jsonl").is_file() or (path / "credit").is_dir() or (path / "eval").is_dir()


def _pretty_call(call: dict) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass  # shown as the model wrote it
    return json.dumps({"name": fn.get("name"), "arguments": args}, indent=2, ensure_ascii=False)


def _turn_messages(traj: dict) -> list[tuple[dict, list[dict]]] | None:
    """(assistant message, the messages that answered it) per turn, or None when they do not line up with turns."""
    msgs = traj.get("messages") or []
    groups: list[tuple[dict, list[dict]]] = []
    for m in msgs:
        if m.get("role") == "assistant":
            groups.append((m, []))
        elif groups:
            groups[-1][1].append(m)
    return groups if len(groups) == len(traj.get("turns") or []) else None


def episode_detail(rec) -> dict:
    """The episode page's data: instruction, turns (action, observation with who answered, marks), reward breakdown."""
    traj = rec.trajectory or {}
    env_obs = not traj.get("tools")  # no tools: every answer is an environment page (WebShop), not a tool or a user
    pairs = _turn_messages(traj)
    turns = []
    for i, t in enumerate(traj.get("turns") or []):
        row = {"a": _cut(t.get("action")), "o": _cut(t.get("observation")), "r": t.get("reward", 0.0),
               "inv": (t.get("info") or {}).get("invalid_reason") or ("invalid action" if t.get("invalid") else None)}
        if pairs is not None:
            msg, answers = pairs[i]
            if msg.get("tool_calls"):
                row["call"] = "\n".join(_pretty_call(c) for c in msg["tool_calls"])
                if msg.get("content"):
                    row["say"] = _cut(msg["content"])
            roles = {a.get("role") for a in answers}
            row["by"] = "env" if env_obs else ("tool" if "tool" in roles else "user")
        else:
            row["by"] = "env"
        if row.get("call") is None:
            row["call"] = _json_call(t.get("action"))
        if row["call"] is None:
            del row["call"]
        turns.append(row)
    return {"instr": _cut(traj.get("initial_observation")), "turns": turns,
            "ri": json.loads(json.dumps(traj.get("reward_info") or {}, default=str)), "seed": rec.seed,
            "why": rec.termination_reason, "err": rec.error, "tok": rec.tokens_out, "wall": rec.wall_time_s}


def _json_call(action) -> str | None:
    """A JSON tool call written as the action text, pretty-printed (None for anything else)."""
    if not isinstance(action, str) or not action.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(action)
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and "name" in obj:
        return json.dumps(obj, indent=2, ensure_ascii=False)
    return None


def episode_row(rec, detail: dict) -> dict:
    """The run page's row of one episode (filters read these fields)."""
    return {"t": rec.task, "a": rec.attempt, "r": rec.reward, "s": bool(rec.success), "n": rec.turns,
            "mt": rec.max_turns, "why": rec.termination_reason, "err": bool(rec.error),
            "inv": sum(1 for t in detail["turns"] if t["inv"])}


def _system_prompt(rec) -> str | None:
    msgs = (rec.trajectory or {}).get("messages") or []
    return _cut(msgs[0].get("content")) if msgs and msgs[0].get("role") == "system" else None


def _summary(rows: list[dict]) -> list[dict]:
    """The harness's summary table (hero_gym.benchmarks.stats) of the flat fields, as JSON-able rows."""
    import pandas as pd

    from hero_gym.benchmarks.stats import summarize

    df = pd.DataFrame(rows, columns=list(FLAT_FIELDS))
    df["success"] = df["success"].astype(bool)
    table = summarize(df)
    # NaN (e.g. turns_success with no success) becomes null when the page data is written (report._clean)
    return [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()} for row in table.to_dict(orient="records")]


def iter_records(path: Path):
    """The run's records one at a time, as RunStore.load() reads them (first copy of a key, torn lines skipped),
    without holding every trajectory in memory at once."""
    seen = set()
    if not (path / EPISODES).is_file():
        return
    with open(path / EPISODES, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rec = EpisodeRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as e:
                if line.endswith("\n"):
                    warnings.warn(f"{path / EPISODES}:{lineno}: skipping unreadable record ({e})", stacklevel=2)
                continue
            if rec.key in seen:
                warnings.warn(f"{path / EPISODES}:{lineno}: duplicate episode {rec.key}; keeping the first", stacklevel=2)
                continue
            seen.add(rec.key)
            yield rec


def load_eval_run(path: Path, label: str, pack: Callable[[list], int]) -> dict:
    """One evaluation run: config, summary rows and one row per episode (in task, attempt order). Episode details
    go to `pack` in chunks of CHUNK_EPISODES as they are read (it returns the chunk's id; a row's "c" and "i" say
    where its details are), so a large run never sits in memory whole."""
    store = RunStore(path)
    rows, flat, pending, system = [], [], [], None
    for rec in iter_records(path):
        detail = episode_detail(rec)
        rows.append(episode_row(rec, detail))
        flat.append({**{f: getattr(rec, f) for f in FLAT_FIELDS}, "run": label})
        if system is None:
            system = _system_prompt(rec)
        pending.append(detail)
        if len(pending) == CHUNK_EPISODES:
            _flush(pending, rows, pack)
    if not rows:
        raise RunStoreError(f"{path} holds no episodes yet")
    _flush(pending, rows, pack)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["t"], rows[i]["a"]))
    return {"label": label, "path": str(path), "config": store.config if store.exists() else {},
            "summary": _summary(flat), "rows": [rows[i] for i in order], "system": system}


def _flush(pending: list, rows: list, pack) -> None:
    if not pending:
        return
    cid = pack(list(pending))
    for i, r in enumerate(rows[len(rows) - len(pending):]):
        r["c"], r["i"] = cid, i
    pending.clear()


def _eval_dirs(path: Path) -> list[Path]:
    """Evaluation stores of a training run: final first, then by step."""
    dirs = [d for d in sorted((path / "eval").glob("*")) if d.is_dir() and (d / EPISODES).is_file()
            and (d / EPISODES).stat().st_size]
    return sorted(dirs, key=lambda d: (d.name != "final", d.name))


def load_train_run(path: Path, label: str, pack: Callable[[list], int]) -> dict:
    """A training run: config, step log, credit records per step and its evaluation runs."""
    from hero_gym.viewer.credit import load_credit

    log = []
    if (path / "train_log.jsonl").is_file():
        for line in (path / "train_log.jsonl").read_text().splitlines():
            try:
                log.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn last line of a killed run
    config = {}
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
    credit = [{"step": s, "n": len(rows), "chunk": pack(rows)} for s, rows in sorted(load_credit(path).items())]
    runs = [load_eval_run(d, f"{label}/eval/{d.name}", pack) for d in _eval_dirs(path)]
    return {"label": label, "path": str(path), "config": config, "log": log, "credit": credit, "runs": runs}


def load_source(path: str | Path, pack: Callable[[list], int]) -> dict:
    """One command-line argument: {"kind": "eval"|"train", ...}; bulky parts go to `pack`, which returns an id.
    Raises RunStoreError for anything else."""
    p = Path(path)
    if not p.is_dir():
        raise RunStoreError(f"run directory {path} does not exist")
    label = run_label(p)
    if is_eval_run(p):
        return {"kind": "eval", "label": label, "runs": [load_eval_run(p, label, pack)]}
    if is_train_run(p):
        return {"kind": "train", **load_train_run(p, label, pack)}
    raise RunStoreError(f"{path} is neither an evaluation run (no {RUN_JSON} or {EPISODES}) nor a training run "
                        "(no train_log.jsonl, credit/ or eval/)")
