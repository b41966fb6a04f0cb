"""`hero-gym eval` on a toy env: records, seeds, resume without loss or duplicates (also after SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hero_gym.cli import main
from hero_gym.evaluate import episode_seed, parse_tasks
from hero_gym.records import RunStore

import harness_toyenv
from harness_fixtures import toy_env  # noqa: F401  (registers the toy env per module)
from harness_toyenv import N_TASKS, TOY_ID

TESTS = Path(__file__).resolve().parent


def test_parse_tasks():
    assert parse_tasks("all", 4) == [0, 1, 2, 3]
    assert parse_tasks("0-4,10,12-13", 20) == [0, 1, 2, 3, 4, 10, 12, 13]
    assert parse_tasks(" 3 ", 5) == [3]
    assert parse_tasks("2,2,1-2", 5) == [1, 2]
    for bad in ("", "x", "1-", "-1", "3-1", "1;2", "5"):
        with pytest.raises(ValueError):
            parse_tasks(bad, 5)


def test_episode_seeds_are_stable_and_distinct():
    seeds = {(t, a): episode_seed(7, t, a) for t in range(50) for a in range(8)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= s < 2**31 for s in seeds.values())
    assert episode_seed(7, 3, 1) == seeds[(3, 1)]  # does not depend on what else was drawn
    assert episode_seed(8, 3, 1) != seeds[(3, 1)]


def _eval(out, *extra, policy="harness_toyenv:even_solver"):
    return main(["--plugin", "harness_toyenv", "eval", "--env", TOY_ID, "--policy", policy, "--out", str(out),
                 "--no-progress", *extra])


def test_eval_stores_every_episode_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert _eval(out, "--k", "2", "--seed", "5") == 0
    printed = capsys.readouterr().out
    assert "mean@2" in printed
    store = RunStore(out)
    recs = store.load()
    assert sorted((r.task, r.attempt) for r in recs) == [(t, a) for t in range(N_TASKS) for a in range(2)]
    for r in recs:
        assert r.success == (r.task % 2 == 0)  # the solver answers even tasks only
        assert r.turns == (1 if r.task % 2 == 0 else 3)  # odd tasks run out of the toy's 3-turn budget
        assert r.termination_reason == ("success" if r.success else "turn_budget")
        assert r.seed == episode_seed(5, r.task, r.attempt)
        assert r.policy == "harness_toyenv:even_solver" and r.env == TOY_ID and r.split == "test"
        assert r.trajectory and r.trajectory["messages"][1]["content"].startswith(f"task {r.task}")
    cfg = store.config
    assert (cfg["k"], cfg["seed"], cfg["max_turns"], cfg["env"]) == (2, 5, 3, TOY_ID)

    # Same command again: nothing to do, so the policy is not even loaded (a broken spec would fail otherwise).
    lines_before = (out / "episodes.jsonl").read_text()
    assert _eval(out, "--k", "2", "--seed", "5") == 0
    assert (out / "episodes.jsonl").read_text() == lines_before

    # Widening k runs only the new attempts.
    assert _eval(out, "--k", "3", "--seed", "5") == 0
    recs = RunStore(out).load()
    assert len(recs) == 3 * N_TASKS and len({r.key for r in recs}) == 3 * N_TASKS
    capsys.readouterr()

    # Another budget or seed would mix different episodes: refused.
    assert _eval(out, "--k", "3", "--seed", "5", "--max-turns", "2") == 2
    assert "different configuration" in capsys.readouterr().err
    assert _eval(out, "--k", "3", "--seed", "6") == 2


@pytest.mark.parametrize("spec, needle", [("harness_toyenv:no_such_factory", "cannot load policy"),
                                          ("no_such_pkg_xyz:make", "cannot load policy"),
                                          ("not a spec", "unknown policy spec")])
def test_eval_bad_policy_spec_exits_2(tmp_path, capsys, spec, needle):
    assert _eval(tmp_path / "run", policy=spec) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_eval_task_selection_and_limit(tmp_path):
    out = tmp_path / "run"
    assert _eval(out, "--tasks", "1-4", "--limit", "2") == 0
    assert sorted(r.task for r in RunStore(out).load()) == [1, 2]


def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "HARNESS_TEST_DELAY": "0.25"}
    cmd = [sys.executable, "-m", "hero_gym.cli", "--plugin", "harness_toyenv", "eval", "--env", TOY_ID,
           "--policy", "harness_toyenv:slow_even_solver", "--k", "3", "--batch-size", "2", "--out", str(out),
           "--no-progress"]
    total = N_TASKS * 3
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    episodes = out / "episodes.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if episodes.is_file() and episodes.read_text().count("\n") >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"eval ended before it could be killed: {proc.communicate()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    n_killed = len(RunStore(out).load())
    assert 3 <= n_killed < total, "the kill should land mid-run"
    # A kill during a write leaves a partial line; simulate the worst case on top of the real kill.
    with open(episodes, "ab") as f:
        f.write(b'{"env": "hero_gym_test/Toy-v0", "split": "test", "task": 1, "attem')

    env["HARNESS_TEST_DELAY"] = "0"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = episodes.read_text().splitlines()
    keys = [(d["task"], d["attempt"]) for d in map(json.loads, lines)]  # every line parses: torn tail was cut
    assert sorted(keys) == [(t, a) for t in range(N_TASKS) for a in range(3)]  # each key exactly once
    for d in map(json.loads, lines):
        assert d["seed"] == episode_seed(0, d["task"], d["attempt"])
        assert d["success"] == (d["task"] % 2 == 0)


def test_policy_kwargs_reach_the_factory_but_not_the_run_identity(tmp_path):
    from hero_gym.evaluate import run_eval

    store = run_eval(TOY_ID, "harness_toyenv:recording_solver", tmp_path / "run", tasks="0-1", progress=False,
                     policy_kwargs={"prefix_cache_mb": 64})
    assert harness_toyenv.LAST_KWARGS == {"prefix_cache_mb": 64}
    assert len(store.load()) == 2 and "prefix_cache_mb" not in store.config
    # a resume with another cache size is the same run
    run_eval(TOY_ID, "harness_toyenv:recording_solver", tmp_path / "run", tasks="0-3", progress=False,
             policy_kwargs={"prefix_cache_mb": 0})
    assert len(RunStore(tmp_path / "run").load()) == 4
