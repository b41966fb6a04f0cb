"""Head-to-head tables and figures built from fixture runs."""

import matplotlib
import pandas as pd
import pytest

from hero_gym.benchmarks import compare as cmp
from hero_gym.benchmarks import plots

from harness_fixtures import make_run

T, F = True, False


def test_compare_paired_statistics(tmp_path):
    # baseline solves tasks 0-1; the challenger solves 0 and 2-7 but not 1: it wins 6 pairs and loses 1.
    base = {t: [t in (0, 1)] for t in range(8)}
    chal = {t: [t in (0, 2, 3, 4, 5, 6, 7)] for t in range(8)}
    make_run(tmp_path / "base", base, policy="base")
    make_run(tmp_path / "chal", chal, policy="chal", turns=2)
    table = cmp.compare([tmp_path / "base", tmp_path / "chal"], n_boot=300)
    row = table.set_index("run").loc["chal"]
    assert row["wins_tasks"] == 6 and row["losses_tasks"] == 1
    assert row["mcnemar_p_tasks"] == pytest.approx(0.125)  # k=1: McNemar, b=6, c=1 by hand: 2 * 8/128
    assert row["diff"] == pytest.approx((7 - 2) / 8)
    assert row["diff_lo"] <= row["diff"] <= row["diff_hi"]
    assert row["mean@1"] == pytest.approx(7 / 8)
    assert row["env_steps_total"] == 8 * 2 and row["tokens_out_total"] == 8 * 40 and row["tokens_out_mean"] == 40
    assert table.attrs["notes"] == []
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    cmp.write_tables(table, csv=csv, md=md)
    assert "| chal" in md.read_text() and "mcnemar_p_tasks" in md.read_text()
    assert pd.read_csv(csv)["wins_tasks"].tolist() == [0, 6]


def test_compare_uses_intersection_and_says_so(tmp_path):
    make_run(tmp_path / "a", {0: [T, F], 1: [T, T], 2: [F, F]})
    make_run(tmp_path / "b", {0: [T, T], 1: [F, T]}, policy="q")
    table = cmp.compare([tmp_path / "a", tmp_path / "b"], n_boot=100)
    assert set(table["episodes"]) == {4}
    assert any("4 (task, attempt) episodes" in n and "a has 2 more" in n for n in table.attrs["notes"])
    assert "4 (task, attempt) episodes" in cmp.to_markdown(table)


def test_compare_refuses_unrelated_runs(tmp_path):
    make_run(tmp_path / "a", {0: [T]})
    make_run(tmp_path / "b", {0: [T]}, env="toy/Other-v0")
    make_run(tmp_path / "c", {5: [T]})
    with pytest.raises(ValueError, match="different env"):
        cmp.compare([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="share no"):
        cmp.compare([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(ValueError, match="at least two"):
        cmp.compare([tmp_path / "a"])


def _sweep(tmp_path):
    dirs = []
    for method, rates in (("hero", {2: 0.5, 4: 0.75, 8: 1.0}), ("grpo", {2: 0.0, 4: 0.25, 8: 0.75})):
        for budget, rate in rates.items():
            n_ok = int(rate * 4)
            d = tmp_path / f"{method}-b{budget}"
            make_run(d, {t: [t < n_ok, t < n_ok] for t in range(4)}, method=method, train_budget=budget,
                     turns=budget // 2 + (method == "grpo"), policy=f"{method}-b{budget}")
            dirs.append(d)
    return dirs


def test_budget_sweep_plot(tmp_path):
    dirs = _sweep(tmp_path)
    table = plots.budget_sweep_table(__import__("hero_gym.records").records.load_frame(dirs), n_boot=100)
    assert table.set_index(["method", "train_budget"]).loc[("hero", 4), "success"] == pytest.approx(0.75)
    out = tmp_path / "fig" / "sweep.png"
    fig = plots.plot_budget_sweep(dirs, out, n_boot=100)
    assert out.is_file() and out.stat().st_size > 10_000
    ax_s, ax_t = fig.axes[:2]
    assert "budget" in ax_s.get_xlabel() and "success" in ax_s.get_ylabel() and "mean@2" in ax_s.get_ylabel()
    assert "turns" in ax_t.get_ylabel()
    assert "evaluation turn budget 10" in fig._suptitle.get_text()
    assert sorted(t.get_text() for t in ax_s.get_legend().get_texts()) == ["grpo", "hero"]
    hero_line = [ln for ln in ax_s.get_lines() if ln.get_label() == "hero"][0]
    assert list(hero_line.get_xdata()) == pytest.approx([2, 4, 8], abs=0.2)  # a small offset per method
    assert list(hero_line.get_ydata()) == [0.5, 0.75, 1.0]
    matplotlib.pyplot.close(fig)


def test_budget_sweep_plot_shows_coinciding_lines_and_says_whether_they_separate(tmp_path):
    dirs = []
    for method in ("grpo", "hero", "sdpo"):
        for budget in (2, 4):
            d = tmp_path / f"{method}-b{budget}"
            make_run(d, {t: [False, False] for t in range(4)}, method=method, train_budget=budget, policy=method)
            dirs.append(d)
    ref = tmp_path / "base"
    make_run(ref, {t: [True, True] for t in range(4)}, method="base", train_budget=0, policy="base")
    fig = plots.plot_budget_sweep(dirs, tmp_path / "a.png", n_boot=100)
    ax_s = fig.axes[0]
    lines = [ln for ln in ax_s.get_lines() if ln.get_label() in ("grpo", "hero", "sdpo")]
    # every method stays visible although all three lie at 0: distinct markers and distinct x positions
    assert len({ln.get_marker() for ln in lines}) == 3
    assert len({tuple(ln.get_xdata()) for ln in lines}) == 3
    assert "no two lines are separated" in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)
    fig = plots.plot_budget_sweep(dirs + [ref], tmp_path / "b.png", n_boot=100)
    ax_s = fig.axes[0]
    base = [ln for ln in ax_s.get_lines() if ln.get_label().startswith("base")]
    assert len(base) == 1 and list(base[0].get_ydata()) == [1.0, 1.0]  # a horizontal reference line
    assert "grpo vs base at budget 2" in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)


def test_budget_sweep_needs_budgets_and_one_env(tmp_path):
    make_run(tmp_path / "a", {0: [T]})
    with pytest.raises(ValueError, match="train_budget"):
        plots.plot_budget_sweep([tmp_path / "a"], tmp_path / "x.png", budget="train")
    make_run(tmp_path / "b", {0: [T]}, train_budget=2, method="hero")
    make_run(tmp_path / "c", {0: [T]}, train_budget=4, method="hero", env="toy/Other-v0")
    with pytest.raises(ValueError, match="one env/split"):
        plots.plot_budget_sweep([tmp_path / "b", tmp_path / "c"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_task_heatmap(tmp_path):
    dirs = _sweep(tmp_path)[:2]
    out = tmp_path / "heat.png"
    fig = plots.plot_task_heatmap(dirs, out)
    assert out.is_file() and out.stat().st_size > 5_000
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("task index") and ax.get_ylabel() == "run"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["hero-b2", "hero-b4"]
    assert "success rate" in fig.axes[1].get_ylabel()  # the colour bar says what the colours mean
    data = ax.get_images()[0].get_array()
    assert data[0].tolist() == [1, 1, 0, 0] and data[1].tolist() == [1, 1, 1, 0]
    matplotlib.pyplot.close(fig)


def test_mcnemar_pairs_tasks_not_attempts(tmp_path):
    # The challenger solves all 4 attempts of task 0 and nothing else; the baseline solves nothing. Counting
    # attempts as independent pairs would give b=4, c=0 (p=0.125); there is one task of evidence (p=1).
    make_run(tmp_path / "base", {t: [F] * 4 for t in range(3)}, policy="base")
    make_run(tmp_path / "chal", {0: [T] * 4, 1: [F] * 4, 2: [F] * 4}, policy="chal")
    table = cmp.compare([tmp_path / "base", tmp_path / "chal"], n_boot=100)
    row = table.set_index("run").loc["chal"]
    assert (row["wins_tasks"], row["losses_tasks"]) == (1, 0)
    assert row["mcnemar_p_tasks"] == pytest.approx(1.0)
    assert row["mean@4_wilson_lo"] < row["mean@4"] < row["mean@4_cp_hi"]
    base = table.set_index("run").loc["base"]
    assert base["mean@4_lo"] == base["mean@4_hi"] == 0.0 and base["mean@4_cp_hi"] > 0.5  # 0 of 3 tasks


def test_compare_leaves_errored_episodes_out_and_says_so(tmp_path):
    make_run(tmp_path / "a", {0: [T], 1: [F], 2: [T]})
    store = make_run(tmp_path / "b", {0: [T], 1: [T]}, policy="q")
    from harness_fixtures import record
    store.append(record(2, 0, False, policy="q", error="generation failed: 503"))
    table = cmp.compare([tmp_path / "a", tmp_path / "b"], n_boot=100).set_index("run")
    assert table.loc["b", "errors"] == 1 and table.loc["b", "episodes"] == 2
    assert table.loc["b", "losses_tasks"] == 0  # the errored episode of task 2 is no loss
    assert any("ended in error" in n for n in table.attrs["notes"])
