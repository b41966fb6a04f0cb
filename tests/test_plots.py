"""Figures a paper can use: vector formats, one legend, benchmark names, the budget the x axis plots, and a
500-task heat map sorted by difficulty."""

import matplotlib
import numpy as np
import pytest

from hero_gym.benchmarks import plots
from hero_gym.records import RunStore
from hero_gym.types import EpisodeRecord

ENV = "hero_gym/WebShop-v0"


def _run(path, successes: dict[int, list[bool]], *, max_turns=4, train_budget=None, method=None, policy="oracle"):
    store = RunStore(path)
    store.init({"env": ENV, "split": "test", "policy": policy})
    store.append([EpisodeRecord(env=ENV, split="test", task=t, attempt=a, seed=1000 * t + a, policy=policy, success=bool(s),
                                reward=float(s), turns=max_turns, termination_reason="purchase", tokens_in=1,
                                tokens_out=1, env_steps=1, wall_time_s=0.1, gen_time_s=0.0, env_time_s=0.1,
                                started_at=0.0, ended_at=0.1, method=method, train_budget=train_budget,
                                max_turns=max_turns)
                  for t, outs in successes.items() for a, s in enumerate(outs)])
    return path


def test_eval_runs_sweep_the_evaluation_budget_and_say_so(tmp_path):
    dirs = [_run(tmp_path / f"b{b}", {t: [t < b] for t in range(4)}, max_turns=b) for b in (1, 3)]
    fig = plots.plot_budget_sweep(dirs, tmp_path / "s.png", n_boot=50)
    ax_s, ax_t = fig.axes[:2]
    assert ax_s.get_xlabel().startswith("evaluation turn budget") and "training" not in ax_s.get_title()
    (line,) = ax_s.get_lines()
    assert list(line.get_xdata()) == [1, 3] and list(line.get_ydata()) == [0.25, 0.75]
    with pytest.raises(ValueError, match="--budget eval"):
        plots.plot_budget_sweep(dirs, tmp_path / "t.png", budget="train")
    matplotlib.pyplot.close(fig)


def test_training_sweep_one_legend_benchmark_title_and_vector_formats(tmp_path):
    dirs = [_run(tmp_path / f"{m}{b}", {0: [True], 1: [b > 2]}, train_budget=b, method=m)
            for m in ("hero", "grpo") for b in (2, 4)]
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<svg")):
        out = tmp_path / f"sweep{suffix}"
        fig = plots.plot_budget_sweep(dirs, out, n_boot=50)
        assert magic in out.read_bytes()[:400]
        assert fig.axes[0].get_xlabel().startswith("training turn budget")
        assert [ax.get_legend() is not None for ax in fig.axes] == [True, False] and not fig.legends
        title = fig._suptitle.get_text()
        assert title.startswith("WebShop, 1,000 products (test split)") and ENV not in title
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match=".png, .pdf, .svg"):
        plots.plot_budget_sweep(dirs, tmp_path / "sweep.jpg", n_boot=50)


def test_500_task_heatmap_is_sorted_by_difficulty_and_fits_a_page(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    dirs = [_run(tmp_path / name, {t: list(rng.uniform(size=4) < p[t]) for t in range(500)}, policy=name)
            for name in ("grpo", "hero")]
    out = tmp_path / "heat.png"
    fig = plots.plot_task_heatmap(dirs, out)
    ax = fig.axes[0]
    data = ax.get_images()[0].get_array()
    assert data.shape == (2, 500)
    ease = data.mean(axis=0)
    assert (np.diff(ease) <= 1e-12).all() and ease[0] == 1 and ease[-1] == 0  # easiest first, and not constant
    assert fig.get_size_inches()[0] <= 12 and "500 tasks sorted by mean success" in ax.get_xlabel()
    assert "WebShop" in ax.get_title() and ENV not in ax.get_title()
    matplotlib.pyplot.close(fig)
