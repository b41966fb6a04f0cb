"""`hero-gym view` end to end: reports built from real runs (a tau eval through the CLI, a tiny-model SDPO training
run), opened in headless Chromium, checked from the DOM the page's script rendered.

Without Chromium these tests skip with the install command; with HERO_GYM_REQUIRE_CHROMIUM=1 (what .ci/run sets)
they fail instead, so CI never skips them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from hero_gym.cli import main
from hero_gym.viewer.browser import INSTALL_HINT, dump_dom, find_chromium, screenshot
from viewer_dom import parse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def chromium():
    if find_chromium():
        return
    if os.environ.get("HERO_GYM_REQUIRE_CHROMIUM"):
        pytest.fail(f"HERO_GYM_REQUIRE_CHROMIUM is set but there is no Chromium: {INSTALL_HINT}")
    pytest.skip(f"no headless Chromium: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("viewer")
    tau = ["eval", "--env", "hero_gym/TauRetail-v0", "--split", "test", "--k", "2", "--tasks", "0-3", "--max-turns", "8",
           "--no-progress"]
    # exit 1: the policy's error episodes are stored but are not results (the viewer still shows them)
    assert main([*tau, "--policy", "viewer_agent:make", "--out", str(d / "mixed")]) == 1
    assert len((d / "mixed" / "episodes.jsonl").read_text().splitlines()) == 8
    assert main([*tau, "--policy", "oracle", "--out", str(d / "oracle")]) == 0
    assert main(["train", "--method", "sdpo", "--env", "hero_gym/WebShop-v0", "--model", "tiny", "--tasks", "0-2",
                 "--group-size", "2", "--tasks-per-step", "2", "--steps", "2", "--max-new-tokens", "12",
                 "--turn-budget", "3", "--eval-split", "test", "--eval-tasks", "0-1", "--set", "topk=10",
                 "--set", "credit_rollouts_per_step=3", "--out", str(d / "train")]) == 0
    return d


def _records(run: Path) -> dict[tuple[int, int], dict]:
    rows = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    return {(r["task"], r["attempt"]): r for r in rows}


def _view(runs, *names, out="r.html") -> Path:
    path = runs / out
    assert main(["view", *(str(runs / n) for n in names), "--out", str(path)]) == 0
    return path


def _dom(page: Path, fragment: str):
    root = parse(dump_dom(page, fragment))
    body = root.find("body")
    assert body.attrs.get("data-ready") == "1", "the page's script did not finish rendering"
    assert body.find("main").find_all("p", cls="bad") == [], "the page reported an error"
    return body


def _check_episode(ep, rec: dict) -> None:
    """Every turn of `rec` is shown in order: the call or message, the observation, marks and the budget."""
    traj = rec["trajectory"]
    turns = ep.find_all("div", cls="turn")
    assert len(turns) == rec["turns"] == len(traj["turns"]) and rec["turns"] > 0
    for i, (node, turn) in enumerate(zip(turns, traj["turns"])):
        assert node.attrs["data-turn"] == str(i)
        assert f"Turn {i + 1} / {rec['max_turns']}" in node.find("div", cls="head").text()
        act = node.find("div", cls="act").text()
        try:
            call = json.loads(turn["action"])
        except json.JSONDecodeError:
            assert act == turn["action"]
        else:
            assert json.loads(act) == call  # pretty-printed, same call
        obs = node.find("div", cls="obs").text()
        try:
            assert json.loads(obs) == json.loads(turn["observation"])
        except json.JSONDecodeError:
            assert obs == turn["observation"]
        assert bool(node.find_all("span", cls="inv")) == turn["invalid"]
    text = ep.text()
    assert f"Termination: {rec['termination_reason']}" in text
    assert traj["initial_observation"] in ep.find("div", cls="instr").text()


def test_episode_page_shows_every_turn_with_marks_and_reward_breakdown(runs):
    page = _view(runs, "mixed")
    recs = _records(runs / "mixed")
    for key in [(0, 1), (1, 0), (3, 1)]:  # oracle success, invalid calls to the budget, questions to the user
        body = _dom(page, f"#ep/0/{key[0]}/{key[1]}")
        [ep] = body.find_all("div", cls="episode")
        _check_episode(ep, recs[key])
        labels = [n.text() for n in ep.find_all("div", cls="who")]
        if key == (3, 1):  # a message to the simulated user is answered by the user, not by a tool
            assert "simulated user's reply" in labels and "tool result" not in labels
        if key == (0, 1):
            assert "agent: tool call" in labels and "tool result" in labels
            assert "DB match: yes" in ep.find("table", cls="reward").parent.text()


def test_filters_change_what_is_visible(runs):
    page = _view(runs, "mixed")
    recs = list(_records(runs / "mixed").values())
    expected = {
        "all": len(recs),
        "success": sum(r["success"] for r in recs),
        "failure": sum(not r["success"] for r in recs),
        "budget": sum(r["termination_reason"] == "turn_budget" for r in recs),
        "invalid": sum(any(t["invalid"] for t in r["trajectory"]["turns"]) for r in recs),
        "error": sum(r["error"] is not None for r in recs),
    }
    assert all(expected.values()) and len(set(expected.values())) > 2  # the run covers every filter
    for name, n in expected.items():
        body = _dom(page, f"#run/0/{name}")
        rows = body.find("table", id="episodes").find_all("tr", cls="ep")
        assert len(rows) == n, name
        cells = body.find("div", id="grid").find_all("a", cls="cell")
        assert len(cells) == len(recs) and sum("dim" not in c.classes for c in cells) == n, name
        [on] = body.find("div", id="filters").find_all("a", cls="on")
        assert on.attrs["data-filter"] == name and on.text().endswith(f"({n})")
        hrefs = [r.find("a").attrs["href"] for r in rows]
        shown = {tuple(map(int, re.fullmatch(r"#ep/0/(\d+)/(\d+)", h).groups())) for h in hrefs}
        keys = {(r["task"], r["attempt"]) for r in recs}
        assert shown <= keys and len(shown) == n


def test_token_colouring_matches_the_stored_per_token_losses(runs):
    page = _view(runs, "train")
    stored = [json.loads(line) for line in (runs / "train" / "credit" / "step_00001.jsonl").read_text().splitlines()]
    turns = [t for r in stored for t in r["turns"] if t["distilled"]]
    values = [v for t in turns for v in t["loss"]]
    scale = max(values)
    body = _dom(page, "#train/0/1")
    assert float(body.find("b", id="scale").attrs["data-scale"]) == scale
    rollouts = body.find_all("div", cls="rollout")
    assert len(rollouts) == len(stored) == 3
    toks = body.find_all("span", cls="tok")
    assert len(toks) == len(values) > 0
    for node, v, tok in zip(toks, values, [x for t in turns for x in t["tokens"]]):
        assert float(node.attrs["data-loss"]) == v  # the exact stored value
        alpha = float(re.search(r"rgba\(220, 38, 38, ([0-9.]+)\)", node.attrs["style"]).group(1))
        assert alpha == pytest.approx(min(1.0, v / scale), abs=6e-4)
        hover = float(re.search(r"loss ([0-9.e+-]+) nats", node.attrs["title"]).group(1))
        assert hover == pytest.approx(v, rel=1e-4) and node.text() == tok
    privileged = [n.text() for n in body.find_all("div", cls="priv")]
    assert privileged == [t["privileged"] for t in turns]
    # The training page links every step that has a credit record and lists the final evaluation.
    body = _dom(page, "#train/0")
    assert len(body.find("table", id="steps").find_all("tr")) == 3
    assert {a.attrs["href"] for a in body.find_all("a") if "rollouts" in a.text()} == {"#train/0/1", "#train/0/2"}
    assert "train/eval/final" in body.text()


def test_two_runs_side_by_side_show_the_same_task_and_attempt(runs):
    page = _view(runs, "mixed", "oracle", out="cmp.html")
    a, b = _records(runs / "mixed"), _records(runs / "oracle")
    for key in [(1, 1), (3, 0)]:
        body = _dom(page, f"#ep/0/{key[0]}/{key[1]}")
        left, right = body.find("div", cls="sides").find_all("div", cls="episode")
        assert (left.attrs["data-run"], right.attrs["data-run"]) == ("0", "1")
        _check_episode(left, a[key])
        _check_episode(right, b[key])
    summary = _dom(page, "#").find("table", cls="summary")
    assert len(summary.find_all("tr")) == 3  # one row per run


def test_large_run_is_paginated_and_screenshot(runs, tmp_path):
    # 1,000 episodes copied from the real run under new keys: the page shows 100 rows at a time, the grid all.
    src = [json.loads(line) for line in (runs / "mixed" / "episodes.jsonl").read_text().splitlines()]
    big = tmp_path / "big"
    big.mkdir()
    (big / "run.json").write_text((runs / "mixed" / "run.json").read_text())
    with open(big / "episodes.jsonl", "w") as f:
        for i in range(1000):
            f.write(json.dumps({**src[i % len(src)], "task": i // 4, "attempt": i % 4}) + "\n")
    page = tmp_path / "big.html"
    assert main(["view", str(big), "--out", str(page)]) == 0
    body = _dom(page, "#run/0/all/3")
    assert len(body.find("table", id="episodes").find_all("tr", cls="ep")) == 100
    assert "page 4 of 10" in body.text() and len(body.find_all("a", cls="cell")) == 1000
    _check_episode(_dom(page, "#ep/0/249/3").find("div", cls="episode"), {**src[999 % len(src)]})
    png = screenshot(_view(runs, "train"), tmp_path / "shot.png", "#train/0/1")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_view_and_plot_credit_errors_are_one_line(runs, tmp_path, capsys):
    for argv in (["view", str(tmp_path / "nope")], ["view", str(runs / "mixed"), "--out", str(tmp_path / "x.txt")],
                 ["view", str(runs / "mixed"), str(runs / "oracle"), str(runs / "train")],
                 ["plot", "credit", str(runs / "train"), "--step", "9", "--out", str(tmp_path / "c.png")],
                 ["plot", "credit", str(runs / "mixed"), "--step", "1", "--out", str(tmp_path / "c.png")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    out = tmp_path / "credit.png"
    assert main(["plot", "credit", str(runs / "train"), "--step", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_markup_and_nan_in_a_run_are_shown_as_text(runs, tmp_path):
    recs = _records(runs / "mixed")
    rec = json.loads(json.dumps(recs[(0, 0)]))
    rec["trajectory"]["turns"][0]["observation"] = "</script><!-- <b>not bold</b> & done"
    rec["trajectory"]["reward_info"]["extra"] = float("nan")
    run = tmp_path / "odd"
    run.mkdir()
    (run / "run.json").write_text((runs / "mixed" / "run.json").read_text())
    (run / "episodes.jsonl").write_text(json.dumps(rec) + "\n")  # json writes NaN, as a run file may hold it
    page = _view(tmp_path, "odd")
    ep = _dom(page, "#ep/0/0/0").find("div", cls="episode")
    _check_episode(ep, rec)
    assert ep.find_all("b") and not any(b.text() == "not bold" for b in ep.find_all("b"))
