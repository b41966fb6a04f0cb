"""The harness end to end on the real benchmarks with the scripted baselines (no model needed)."""

import pandas as pd
import pytest

from hero_gym.cli import main
from hero_gym.records import RunStore


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["hero_gym/TauRetail-v0", "hero_gym/WebShop-v0"])
def test_oracle_beats_random_on_real_env(tmp_path, capsys, env_id):
    common = ["--env", env_id, "--tasks", "0-3", "--k", "2", "--no-progress"]  # the env's default budget
    assert main(["eval", *common, "--policy", "oracle", "--out", str(tmp_path / "oracle")]) == 0
    assert main(["eval", *common, "--policy", "random", "--out", str(tmp_path / "random")]) == 0
    oracle = RunStore(tmp_path / "oracle").load()
    rand = RunStore(tmp_path / "random").load()
    assert len(oracle) == len(rand) == 8
    # The gold replay solves every task (a fact of the benchmarks: every gold trajectory scores 1.0).
    assert all(r.success and r.reward == 1.0 for r in oracle)
    assert {(r.task, r.attempt) for r in oracle} == {(r.task, r.attempt) for r in rand}
    assert all(r.seed == o.seed for r, o in zip(sorted(rand, key=lambda r: r.key), sorted(oracle, key=lambda r: r.key)))
    capsys.readouterr()

    csv = tmp_path / "cmp.csv"
    assert main(["compare", str(tmp_path / "random"), str(tmp_path / "oracle"), "--csv", str(csv)]) == 0
    table = pd.read_csv(csv).set_index("run")
    n_random_fail_tasks = len({r.task for r in rand if not r.success})  # the oracle solves every attempt
    assert table.loc["oracle", "wins_tasks"] == n_random_fail_tasks and table.loc["oracle", "losses_tasks"] == 0
    assert table.loc["oracle", "mean@2"] == 1.0
