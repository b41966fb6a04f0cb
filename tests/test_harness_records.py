"""The run store: append/load, torn lines, config checks, locking, Parquet and chat exports."""

import json

import pandas as pd
import pytest

from hero_gym.records import (RunStore, RunStoreError, export_chat_jsonl, export_parquet, load_frame,
                              record_from_trajectory)
from hero_gym.types import Trajectory, Turn

from harness_fixtures import make_run, record


def test_append_load_roundtrip(tmp_path):
    store = make_run(tmp_path / "r", {0: [True, False], 1: [False]})
    recs = store.load()
    assert [(r.task, r.attempt, r.success) for r in recs] == [(0, 0, True), (0, 1, False), (1, 0, False)]
    assert store.done_keys() == {("toy/Env-v0", "test", 0, 0), ("toy/Env-v0", "test", 0, 1),
                                 ("toy/Env-v0", "test", 1, 0)}
    # every line on disk is one complete JSON object
    lines = (tmp_path / "r" / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["env"] == "toy/Env-v0" for line in lines)


def test_torn_last_line_is_ignored_then_repaired(tmp_path):
    store = make_run(tmp_path / "r", {0: [True, True]})
    with open(store.episodes_path, "ab") as f:
        f.write(b'{"env": "toy/Env-v0", "split": "test", "task": 5, "att')  # what a SIGKILL mid-write leaves
    fresh = RunStore(tmp_path / "r")
    assert len(fresh.load()) == 2
    assert ("toy/Env-v0", "test", 5, 0) not in fresh.done_keys()
    fresh.append(record(5, 0, False))
    lines = store.episodes_path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert [r.task for r in RunStore(tmp_path / "r").load()] == [0, 0, 5]


def test_record_missing_only_its_newline_is_kept(tmp_path):
    store = make_run(tmp_path / "r", {0: [True]})
    with open(store.episodes_path, "ab") as f:
        f.write(json.dumps(record(1, 0, True).to_dict()).encode())
    fresh = RunStore(tmp_path / "r")
    assert len(fresh.load()) == 2
    fresh.append(record(2, 0, True))
    assert [r.task for r in RunStore(tmp_path / "r").load()] == [0, 1, 2]


def test_corrupt_middle_line_and_duplicates_warn_but_keep_good_records(tmp_path):
    store = make_run(tmp_path / "r", {0: [True]})
    with open(store.episodes_path, "ab") as f:
        f.write(b"not json\n")
    store.append([record(1, 0, True), record(0, 0, False)])  # the second repeats key (task 0, attempt 0)
    with pytest.warns(UserWarning):
        recs = RunStore(tmp_path / "r").load()
    assert [(r.task, r.success) for r in recs] == [(0, True), (1, True)]


def test_resume_with_other_config_refuses(tmp_path):
    store = RunStore(tmp_path / "r")
    cfg = {"env": "toy/Env-v0", "split": "test", "policy": "p", "k": 2, "max_turns": 5, "seed": 0}
    stored = store.init(cfg)
    assert stored["created"] and stored["hero_gym_version"]
    assert store.init({**cfg, "k": 4})["k"] == 4  # widening k is a legal resume
    with pytest.raises(RunStoreError, match="max_turns: stored 5, asked 7"):
        store.init({**cfg, "max_turns": 7})
    with pytest.raises(RunStoreError, match="policy"):
        RunStore(tmp_path / "r").init({**cfg, "policy": "q"})


def test_lock_refuses_second_writer(tmp_path):
    store = RunStore(tmp_path / "r")
    with store.lock():
        with pytest.raises(RunStoreError, match="another process"):
            with RunStore(tmp_path / "r").lock():
                pass
    with RunStore(tmp_path / "r").lock():  # released after the first holder leaves
        pass


def test_load_frame_errors(tmp_path):
    with pytest.raises(RunStoreError, match="does not exist"):
        load_frame([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="not a hero-gym run"):
        load_frame([tmp_path / "empty"])
    RunStore(tmp_path / "new").init({"env": "e"})
    with pytest.raises(RunStoreError, match="no episodes"):
        load_frame([tmp_path / "new"])


def test_parquet_export_has_flat_fields(tmp_path):
    make_run(tmp_path / "r", {0: [True, False], 3: [True, True]}, method="hero", train_budget=4)
    n = export_parquet(tmp_path / "r", tmp_path / "out.parquet")
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert n == 4 and len(df) == 4
    assert "trajectory" not in df.columns
    assert df["success"].tolist() == [True, False, True, True]
    assert set(df["method"]) == {"hero"} and set(df["train_budget"]) == {4}


def _traj(task, success):
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": "find", "arguments": '{"q": 1}'}}]},
            {"role": "tool", "tool_call_id": "c0", "content": "found"},
            {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks ###STOP###"}]
    return Trajectory(env_id="toy/Env-v0", task_index=task, seed=7, split="test", messages=msgs,
                      tools=[{"type": "function", "function": {"name": "find", "parameters": {}}}],
                      turns=[Turn(index=0, action="a", observation="found"), Turn(index=1, action="done", observation="")],
                      reward=float(success), success=success, env_steps=2, tokens_out=9)


def test_export_chat_jsonl(tmp_path):
    store = RunStore(tmp_path / "r")
    store.init({"env": "toy/Env-v0"})
    store.append([record_from_trajectory(_traj(0, True), attempt=0, policy="p"),
                  record_from_trajectory(_traj(1, False), attempt=0, policy="p"),
                  record(2, 0, True)])  # stored without a trajectory
    with pytest.warns(UserWarning, match="no stored trajectory"):
        n = export_chat_jsonl(tmp_path / "r", tmp_path / "all.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert n == 2 and len(rows) == 2
    # the user's closing message is cut: the example ends on the agent's last message
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert rows[0]["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"q": 1}
    assert rows[0]["tools"][0]["function"]["name"] == "find"
    with pytest.warns(UserWarning):
        assert export_chat_jsonl(tmp_path / "r", tmp_path / "ok.jsonl", only_success=True) == 1
    with pytest.raises(RunStoreError):
        export_chat_jsonl(tmp_path / "missing", tmp_path / "x.jsonl")


def test_record_from_trajectory_copies_outcome_and_compute():
    rec = record_from_trajectory(_traj(3, True), attempt=2, policy="p", max_turns=9, method="grpo", train_budget=4)
    assert rec.key == ("toy/Env-v0", "test", 3, 2)
    assert (rec.success, rec.reward, rec.turns, rec.env_steps, rec.tokens_out) == (True, 1.0, 2, 2, 9)
    assert rec.trajectory["messages"][1]["content"] == "hi"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), frac=st.floats(0.0, 1.0))
def test_a_kill_at_any_byte_loses_only_unfinished_records(tmp_path_factory, n, frac):
    store = make_run(tmp_path_factory.mktemp("run"), {t: [t % 2 == 0] for t in range(n)})
    data = store.episodes_path.read_bytes()
    cut = int(frac * len(data))
    store.episodes_path.write_bytes(data[:cut])
    ends = [i for i, b in enumerate(data) if b == ord("\n")]  # record j's JSON ends at byte ends[j]
    complete = sum(1 for e in ends if e <= cut)  # JSON fully written (its newline may be missing)
    fresh = RunStore(store.dir)
    assert [r.task for r in fresh.load()] == list(range(complete))
    fresh.append(record(99, 0, True))
    assert [r.task for r in RunStore(store.dir).load()] == list(range(complete)) + [99]
    assert all(json.loads(line) for line in store.episodes_path.read_text().splitlines())
