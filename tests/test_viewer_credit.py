"""Credit records (agents/credit_log.py): the stored per-token values are the training loss's own terms, bounded."""

from __future__ import annotations

import json

import pytest

from hero_gym.agents.credit_log import cut
from hero_gym.viewer.credit import credit_path, load_credit
from test_agents import SECRET, build


def _log(tr) -> list[dict]:
    return [json.loads(line) for line in (tr.out_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method,student_pass", [("sdpo", "trajectory"), ("sdpo", "turn"), ("hero", "trajectory"),
                                                 ("hero", "turn"), ("full-demo", "trajectory")])
def test_stored_token_losses_are_the_loss_terms_of_the_step(tmp_path, method, student_pass):
    # Every rollout kept: the stored values summed over all tokens, over the scored token count, is the logged loss.
    tr = build(tmp_path, method, cfg_kw={"steps": 2, "credit_rollouts_per_step": 100, "student_pass": student_pass,
                                         "micro_batch_size": 2})
    tr.train()
    credit = load_credit(tr.out_dir)
    assert sorted(credit) == [1, 2]
    for rec in _log(tr):
        rolls = credit[rec["step"]]
        assert len(rolls) == rec["episodes"]
        turns = [t for r in rolls for t in r["turns"] if t["distilled"]]
        assert len(turns) == rec["scored_turns"]
        values = [v for t in turns for v in t["loss"]]
        assert len(values) == rec["loss_tokens"] and all(v >= 0 for v in values)
        distill = rec.get("distill_loss", rec["loss"])  # the loss without an optional RL term
        assert sum(values) / rec["loss_tokens"] == pytest.approx(distill, rel=1e-4, abs=1e-9)
        for t in turns:
            assert len(t["token_ids"]) == len(t["tokens"]) == len(t["loss"]) > 0
            assert t["privileged"]
    if method == "hero":  # the scripted reflector diagnoses turns 1 and 3 only; its text is the teacher's context
        for r in credit[1]:
            assert [t["distilled"] for t in r["turns"]] == [True, False, True]
            assert all(SECRET in t["privileged"] for t in r["turns"] if t["distilled"])


def test_rollouts_per_step_bound_and_a_redone_step_rewrites_its_file(tmp_path):
    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 2, "credit_rollouts_per_step": 1, "grad_accum": 2})
    stale = credit_path(tr.out_dir, 2)
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}\n' * 5)  # what a step killed and redone after a resume would find
    tr.train()
    credit = load_credit(tr.out_dir)
    assert [len(credit[s]) for s in (1, 2)] == [1, 1]
    assert credit[2][0]["step"] == 2 and credit[2][0]["group"] == 0 and credit[2][0]["member"] == 0
    off = build(tmp_path / "off", "sdpo", cfg_kw={"steps": 1, "credit_rollouts_per_step": 0})
    off.train()
    assert not (off.out_dir / "credit").exists()
    with pytest.raises(FileNotFoundError, match="no credit record for step 3; it has steps \\[1, 2\\]"):
        load_credit(tr.out_dir, 3)


def test_bad_bound_and_long_texts():
    from hero_gym.agents import TrainConfig

    with pytest.raises(ValueError, match="credit_rollouts_per_step"):
        TrainConfig(credit_rollouts_per_step=-1).validate()
    long = "a" * 5000 + "b" * 5000
    short = cut(long, 100)
    assert short.startswith("a" * 50) and short.endswith("b" * 50) and "9900 characters not stored" in short
    assert cut("x", 100) == "x" and cut(None) == ""


def test_plot_credit_shades_each_token_by_its_stored_loss(tmp_path):
    from matplotlib.patches import Rectangle

    from hero_gym.benchmarks.plots import CREDIT_RGB, plot_credit

    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 1, "credit_rollouts_per_step": 2})
    tr.train()
    rolls = load_credit(tr.out_dir, 1)[1]
    values = [v for r in rolls for t in r["turns"] if t["distilled"] for v in t["loss"]]
    fig = plot_credit(tr.out_dir, 1, tmp_path / "c.png", max_rollouts=2)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == len(values) > 0
    for box, v in zip(boxes, values):
        r, g, b, a = box.get_facecolor()
        assert (r, g, b) == pytest.approx(CREDIT_RGB) and a == pytest.approx(v / max(values), abs=1e-6)
    with pytest.raises(ValueError, match="max_rollouts"):
        plot_credit(tr.out_dir, 1, tmp_path / "c.png", max_rollouts=0)
