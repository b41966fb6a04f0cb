"""Progress a person can watch: plain lines (not carriage returns) when stderr is not a terminal, turns and tokens
while episodes run, and one line per training step."""

from __future__ import annotations

import io
import re

import pytest

from hero_gym.progress import LineProgress, progress_bar


def test_not_a_terminal_gets_whole_lines_at_most_every_interval():
    out = io.StringIO()  # not a tty
    bar = progress_bar(2000, desc="eval", unit="ep", file=out, interval=3600)
    for _ in range(2000):
        bar.update(1)
        bar.set_postfix(turns=5)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    assert text.count("\n") == 1 and text.startswith("eval: 2000/2000 ep (100%)") and "turns=5" in text

    out = io.StringIO()
    with progress_bar(3, unit="ep", file=out, interval=0) as bar:
        for _ in range(3):
            bar.update(1)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == ["1/3 ep (33%)", "2/3 ep (67%)",
                                                                           "3/3 ep (100%)", "3/3 ep (100%)"]


def test_style_can_be_forced(monkeypatch):
    monkeypatch.setenv("HERO_GYM_PROGRESS", "lines")
    assert isinstance(progress_bar(3, file=io.StringIO()), LineProgress)
    monkeypatch.setenv("HERO_GYM_PROGRESS", "bar")
    assert not isinstance(progress_bar(3, file=io.StringIO()), LineProgress)


@pytest.fixture
def lines_every_update(monkeypatch):
    monkeypatch.setenv("HERO_GYM_PROGRESS", "lines")
    monkeypatch.setenv("HERO_GYM_PROGRESS_INTERVAL", "0")


def test_eval_shows_turns_and_tokens_before_any_episode_ends(tmp_path, capsys, lines_every_update):
    from hero_gym.evaluate import run_eval

    run_eval("hero_gym/WebShop-v0", "tiny", tmp_path / "run", tasks="0-2", max_turns=2, max_new_tokens=4)
    err = capsys.readouterr().err
    # 3 episodes in one batch: after the first round, turns and tokens are counted while 0 episodes are done
    early = [ln for ln in err.splitlines() if ln.startswith("WebShop-v0: 0/3 ep") and "turns=" in ln]
    assert early, err
    m = re.search(r"turns=(\d+), tokens=(\d+)", early[-1])
    assert int(m.group(1)) >= 1 and int(m.group(2)) >= 1
    assert re.search(r"WebShop-v0: 3/3 ep \(100%\).*success=.*turns=6, tokens=\d+", err)


def test_train_prints_a_line_per_step_and_rollout_progress(tmp_path, capsys, lines_every_update):
    from hero_gym.agents import TrainConfig, make_trainer
    from hero_gym.agents.sdpo import SDPOConfig
    from hero_gym.policies.models import tiny_model

    model, tok = tiny_model()
    cfg = TrainConfig(env_id="hero_gym/WebShop-v0", split="train", tasks=[0, 1], method="sdpo", group_size=2,
                      tasks_per_step=1, steps=2, turn_budget=2, max_new_tokens=4, out_dir=str(tmp_path / "t"),
                      save_every=0, export_model=False)
    make_trainer(cfg, SDPOConfig(topk=5), model=model, tokenizer=tok).train()
    err = capsys.readouterr().err
    steps = [ln for ln in err.splitlines() if ln.startswith("[sdpo] step ")]
    assert [s.split()[2] for s in steps] == ["1/2", "2/2"], err
    for s in steps:
        assert re.search(r"loss \S+ +reward \S+ +success \S+ +turns \S+ +tok/s \d+\.\d +selected \d+/\d+ turns", s), s
    assert re.search(r"train sdpo: 0/2 step.*rollouts: [1-9]\d* turns, [1-9]\d* tokens", err)  # during step 1


def test_terminal_bar_redraws_postfix_changes_at_most_every_mininterval(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("HERO_GYM_PROGRESS", raising=False)
    out = Tty()
    bar = progress_bar(10, file=out)
    for i in range(5000):  # a scripted policy's turns: far faster than a person can read
        bar.set_postfix(turns=i)
    bar.close()
    assert out.getvalue().count("\r") < 50


def test_disabled_bar_takes_postfix_quietly():
    out = io.StringIO()
    bar = progress_bar(3, file=out, disable=True)
    bar.set_postfix(turns=1)
    bar.set_postfix_str("x")
    bar.update(1)
    bar.close()
    assert out.getvalue() == ""
