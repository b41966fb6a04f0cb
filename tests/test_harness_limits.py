"""Harness limits: bounded memory, lazy episode keys, a default batch that stores as it goes, the run lock, and a
reader that tolerates duplicate lines."""

import gc
import json
import warnings
import weakref

import pytest

from hero_gym import evaluate
from hero_gym.records import LOCK, RunStore, RunStoreError
from hero_gym.rollout import EpisodeSpec, run_episodes

import harness_toyenv
from harness_fixtures import toy_env  # noqa: F401  (registers the toy env per module)
from harness_fixtures import make_run, record
from harness_toyenv import TOY_ID, FlakyPolicy


def test_rollout_can_drop_trajectories_once_handed_over():
    refs = []
    out = run_episodes(TOY_ID, harness_toyenv.even_solver(), [EpisodeSpec(t % 6, t // 6, seed=t) for t in range(24)],
                       batch_size=4, on_episode=lambda tr: refs.append(weakref.ref(tr)), keep_results=False)
    gc.collect()
    assert out == [] and len(refs) == 24 and all(r() is None for r in refs)


def test_eval_keeps_no_trajectory_after_storing_it(tmp_path, monkeypatch):
    alive_max, refs = 0, []
    real = evaluate.record_from_trajectory

    def spy(traj, **kw):
        nonlocal alive_max
        refs.append(weakref.ref(traj))  # trajectories hold no cycles: refcounting frees them at once
        alive_max = max(alive_max, sum(r() is not None for r in refs))
        return real(traj, **kw)

    monkeypatch.setattr(evaluate, "record_from_trajectory", spy)
    evaluate.run_eval(TOY_ID, "harness_toyenv:even_solver", tmp_path / "run", k=10, batch_size=4, progress=False)
    assert len(refs) == 60
    assert alive_max <= 8  # the live batch and the round's finished ones, not all 60 episodes


def test_episode_keys_are_made_lazily_and_handed_over_in_chunks(tmp_path, monkeypatch):
    calls = []
    real = evaluate.run_episodes if hasattr(evaluate, "run_episodes") else None
    import hero_gym.rollout as rollout

    original = rollout.run_episodes

    def spy(env_id, policy, specs, **kw):
        calls.append((len(specs), kw.get("keep_results")))
        return original(env_id, policy, specs, **kw)

    monkeypatch.setattr(rollout, "run_episodes", spy)
    monkeypatch.setattr(evaluate, "CHUNK", 7)
    store = evaluate.run_eval(TOY_ID, "harness_toyenv:even_solver", tmp_path / "run", k=4, progress=False)
    assert real is None or real is original
    assert [n for n, _ in calls] == [7, 7, 7, 3] and all(keep is False for _, keep in calls)
    assert len(store.done_keys()) == 24


def test_default_batch_is_bounded_so_episodes_are_stored_as_they_finish(tmp_path):
    FlakyPolicy.FAIL_TASKS, FlakyPolicy.MAX_BATCH = set(), 0
    evaluate.run_eval(TOY_ID, "harness_toyenv:flaky_solver", tmp_path / "run", k=11, progress=False)
    assert FlakyPolicy.MAX_BATCH == evaluate.DEFAULT_BATCH < 66


def test_deleted_lock_file_does_not_let_two_writers_store(tmp_path):
    a = RunStore(tmp_path / "r")
    with a.lock():
        a.append(record(0, 0, True))
        (tmp_path / "r" / LOCK).unlink()  # a user "cleaning up" a lock they think is stale
        b = RunStore(tmp_path / "r")
        with b.lock():  # the OS cannot stop b now: the name is free
            b.append(record(1, 0, True))
            with pytest.raises(RunStoreError, match="was deleted"):
                a.append(record(1, 0, False))  # ...but a notices and stops before storing a duplicate
    recs = RunStore(tmp_path / "r").load()
    assert [(r.task, r.success) for r in recs] == [(0, True), (1, True)]
    assert len((tmp_path / "r" / "episodes.jsonl").read_text().splitlines()) == 2


def test_deleted_lock_file_with_nobody_else_is_locked_again(tmp_path):
    a = RunStore(tmp_path / "r")
    with a.lock():
        (tmp_path / "r" / LOCK).unlink()
        with pytest.warns(UserWarning, match="locked it again"):
            a.append(record(0, 0, True))
        with pytest.raises(RunStoreError, match="another process"):
            with RunStore(tmp_path / "r").lock():
                pass
    assert len(RunStore(tmp_path / "r").load()) == 1


def test_reader_tolerates_many_duplicate_lines_by_key(tmp_path):
    store = make_run(tmp_path / "r", {0: [True], 1: [False]})
    lines = [json.dumps(record(t, 0, t == 0).to_dict()) + "\n" for t in (0, 1)] * 600
    with open(store.episodes_path, "a") as f:  # what two writers leave: 1,200 repeated lines
        f.writelines(lines)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = RunStore(tmp_path / "r").load()
    assert [(r.task, r.success) for r in recs] == [(0, True), (1, False)]
    assert len(caught) == 1 and "1200 duplicate" in str(caught[0].message)


def test_a_retried_error_is_replaced_by_its_result_but_a_result_never_is(tmp_path):
    store = make_run(tmp_path / "r", {0: [True]})
    store.append([record(1, 0, False, error="boom"), record(1, 0, True), record(1, 0, False, error="late boom"),
                  record(2, 0, False, error="first"), record(2, 0, False, error="second")])
    recs = {r.task: r for r in RunStore(tmp_path / "r").load()}
    assert recs[1].success and recs[1].error is None
    assert recs[2].error == "second"  # no result yet: the latest error is the one to read
    assert RunStore(tmp_path / "r").done_keys() == {("toy/Env-v0", "test", 0, 0), ("toy/Env-v0", "test", 1, 0)}


def test_records_written_before_the_accounting_fields_still_summarise(tmp_path):
    from hero_gym.benchmarks.compare import compare
    from hero_gym.benchmarks.stats import summarize
    from hero_gym.records import load_frame

    for name in ("old", "older"):
        store = RunStore(tmp_path / name)
        store.init({"env": "toy/Env-v0", "split": "test", "policy": name})
        with open(store.episodes_path, "w") as f:
            for t in range(4):
                d = record(t, 0, t % 2 == 0, policy=name).to_dict()
                for new in ("gen_time_s", "env_time_s", "started_at", "ended_at"):
                    d.pop(new)
                f.write(json.dumps(d) + "\n")
    row = summarize(load_frame([tmp_path / "old"]), n_boot=50).iloc[0]
    assert row["mean@1"] == 0.5 and row["tokens_out_total"] == 4 * 60
    table = compare([tmp_path / "old", tmp_path / "older"], n_boot=50)
    assert table["wall_time_s_run"].isna().all()
    assert any("predate" in n for n in table.attrs["notes"])
