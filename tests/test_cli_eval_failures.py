"""`hero-gym eval` never shows a failure as a result: errored episodes, bad input checked before any write, bad --out,
another --k on a finished run, and model text no encoder likes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hero_gym.cli import main
from hero_gym.records import RunStore

import harness_toyenv
from harness_fixtures import toy_env  # noqa: F401  (registers the toy env per module)
from harness_toyenv import N_TASKS, TOY_ID, FlakyPolicy

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def healthy_server():
    FlakyPolicy.FAIL_TASKS, FlakyPolicy.FAIL_TIMES, FlakyPolicy.MAX_BATCH = set(), {}, 0
    yield


def _eval(out, *extra, policy="harness_toyenv:flaky_solver"):
    return main(["--plugin", "harness_toyenv", "eval", "--env", TOY_ID, "--policy", policy, "--out", str(out),
                 "--no-progress", *extra])


# ----- errored episodes ------------------------------------------------------------------------------------------
def test_errored_episode_is_no_result_exits_1_and_is_retried_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    FlakyPolicy.FAIL_TASKS = {2}
    assert _eval(out, "--k", "2") == 1
    captured = capsys.readouterr()
    err_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and "2 of 12 episode(s) ended in error" in err_lines[0]
    assert "task 2 attempt 0" in err_lines[0] and FlakyPolicy.ERROR_TEXT in err_lines[0]
    assert captured.err.count("episode error (task 2, attempt 0)") == 1  # said when it happened, once
    # the table scores the 10 results: tasks 0 and 4 solved, 1, 3, 5 not; task 2 is absent, not a failure
    assert "mean@2" in captured.out and "2 episode(s) ended in error" in captured.out
    store = RunStore(out)
    assert ("hero_gym_test/Toy-v0", "test", 2, 0) not in store.done_keys()
    assert len(store.done_keys()) == 10 and len(store.load()) == 12  # the errors are stored, for diagnosis

    FlakyPolicy.FAIL_TASKS = set()  # the server is back: the same command reruns only the errored episodes
    assert _eval(out, "--k", "2") == 0
    assert "ended in error" not in capsys.readouterr().err
    recs = RunStore(out).load()
    assert len(recs) == 12 and all(r.error is None for r in recs)
    assert [r.success for r in recs if r.task == 2] == [True, True]
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 14  # two error lines kept in the file, superseded by their retries


def test_retry_errors_reruns_transient_failures_in_the_same_invocation(tmp_path, capsys):
    FlakyPolicy.FAIL_TASKS, FlakyPolicy.FAIL_TIMES = {1, 4}, {1: 1, 4: 1}  # each fails once, then works
    assert _eval(tmp_path / "run", "--retry-errors", "1") == 0
    assert "ended in error" not in capsys.readouterr().err
    assert len(RunStore(tmp_path / "run").done_keys()) == N_TASKS
    FlakyPolicy.FAIL_TASKS, FlakyPolicy.FAIL_TIMES = {1}, {1: 5}
    assert _eval(tmp_path / "run2", "--retry-errors", "2") == 1  # 3 tries are not enough for 5 failures
    assert "1 of 6 episode(s) ended in error" in capsys.readouterr().err


def test_an_error_text_no_terminal_can_encode_is_still_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(FlakyPolicy, "ERROR_TEXT", "bad reply: \ud800")
    FlakyPolicy.FAIL_TASKS = {0}
    assert _eval(tmp_path / "run") == 1
    assert "bad reply: \\ud800" in capsys.readouterr().err


# ----- nothing written before everything is checked ---------------------------------------------------------------
@pytest.mark.parametrize("policy, needles", [
    ("harness_toyenv:flaky_solvr", ["cannot load policy", "did you mean 'flaky_solver'"]),
    ("smolm2", ["unknown policy spec", "did you mean 'smollm2'"]),
    ("oracel", ["did you mean 'oracle'"]),
    ("http://localhost:8000/v1", ["#"]),
    ("harness_toyenv:broken_factory", ["cannot load policy", "model weights not found"]),
])
def test_bad_policy_writes_nothing_and_suggests(tmp_path, capsys, policy, needles):
    out = tmp_path / "run"
    assert _eval(out, policy=policy) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in needles), err
    assert not out.exists()  # no run.json locked to the typo, not even an empty directory


def test_unknown_env_and_split_suggest_the_nearest(tmp_path, capsys):
    assert main(["eval", "--env", "hero_gym/WebShp-v0", "--policy", "oracle", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean 'hero_gym/WebShop-v0'" in capsys.readouterr().err
    assert main(["eval", "--env", "hero_gym/TauRetail-v0", "--split", "tset", "--policy", "oracle",
                 "--out", str(tmp_path / "r")]) == 2
    assert "did you mean 'test'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_other_config_is_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    assert _eval(out, "--tasks", "0") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert _eval(out, "--tasks", "0", "--seed", "3") == 2
    assert "different configuration" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_huge_k_is_refused_at_once(tmp_path):
    import resource

    def cap_memory():  # a harness that built every episode key first would die here, not take the machine down
        resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    for k in ("1000000000000", "10001"):
        proc = subprocess.run([sys.executable, "-m", "hero_gym.cli", "--plugin", "harness_toyenv", "eval", "--env",
                               TOY_ID, "--policy", "harness_toyenv:even_solver", "--k", k, "--tasks", "0",
                               "--no-progress", "--out", str(tmp_path / "run")], env=env, capture_output=True,
                              text=True, timeout=120, preexec_fn=cap_memory)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and "more than the 10,000 allowed" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_another_k_on_a_finished_run_says_what_was_stored_and_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert _eval(out, "--k", "3") == 0
    capsys.readouterr()
    assert _eval(out, "--k", "2") == 0
    captured = capsys.readouterr()
    assert "stores 3 attempts per task" in captured.err and "--k 2" in captured.err
    assert "mean@2" in captured.out and "mean@3" not in captured.out
    assert re.search(rf"\|\s+{2 * N_TASKS}\s+\|", captured.out)  # the 12 episodes asked for, not all 18


# ----- --out that cannot be a run directory ---------------------------------------------------------------------
def test_bad_out_paths_get_one_line_each(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `--out ''` used to write its run
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("x")
    for out, needle in (("", "--out is empty"), ("  ", "--out is empty"), (str(a_file), "not a directory"),
                        ("/dev/null", "not a directory"), (str(a_file / "run"), "is a file"),
                        (str(busy), "holds other files")):
        assert _eval(out) == 2, out
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, (out, err)
    assert a_file.read_text() == "x" and sorted(p.name for p in busy.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "episodes.jsonl").exists() and not (tmp_path / "run.json").exists()


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this process cannot write to: permission bits for a normal user; root ignores them, so for root
    the directory is made immutable (chattr +i), which binds root too."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(ro)], check=True)
    else:
        ro.chmod(0o555)
    yield ro
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    else:
        ro.chmod(0o755)


def test_read_only_out_directory_gets_one_line(read_only_dir, capsys):
    assert not os.access(read_only_dir, os.W_OK)  # the precondition of the test itself
    for out in (read_only_dir, read_only_dir / "run"):
        assert _eval(out) == 2
        err = capsys.readouterr().err.strip()
        assert "not writable" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert list(read_only_dir.iterdir()) == []


# ----- text no encoder likes --------------------------------------------------------------------------------------
def test_a_lone_surrogate_in_model_output_is_stored_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    policy = "harness_toyenv:surrogate_solver"
    assert _eval(out, "--tasks", "0-1", policy=policy) == 0
    recs = RunStore(out).load()
    assert len(recs) == 2 and recs[0].trajectory["turns"][0]["action"].startswith("answer \ud800")
    assert all(json.loads(line) for line in (out / "episodes.jsonl").read_text(encoding="utf-8").splitlines())
    assert _eval(out, "--tasks", "0-3", policy=policy) == 0  # the resume reads them back and appends
    assert len(RunStore(out).done_keys()) == 4
    assert main(["export", str(out), "--out", str(tmp_path / "chat.jsonl")]) == 0
    assert "\ud800" in json.loads((tmp_path / "chat.jsonl").read_text().splitlines()[0])["messages"][-1]["content"]
