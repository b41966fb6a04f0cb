"""What a newcomer following the README meets: typos named as typos, the data found where the tests find it, and
`data verify` counting the files the package actually reads."""

import re

import pytest

from hero_gym import data
from hero_gym.cli import main
from hero_gym.download import data_main


@pytest.mark.parametrize("argv, typo, nearest", [
    (["eval", "--env", "hero_gym/TauRetail-v0", "--polcy", "oracle", "--out", "x"], "--polcy", "--policy"),
    (["demo", "--polcy", "oracle"], "--polcy", "--policy"),
    (["summary", "runs/a", "--cvs", "x.csv"], "--cvs", "--csv"),
    (["plot", "heatmap", "runs/a", "--ot", "x.png"], "--ot", "--out"),
    (["train", "--method", "hero", "--env", "hero_gym/WebShop-v0", "--stpes", "3", "--out", "x"], "--stpes", "--steps"),
    (["sweep", "--budgets", "2", "--env", "hero_gym/WebShop-v0", "--out", "x", "--mehtods", "hero"], "--mehtods",
     "--methods"),
    (["data", "verify", "--dst", "x"], "--dst", "--dest"),
    (["data", "download", "tau2", "--froce"], "--froce", "--force"),
])
def test_misspelled_flag_is_named_with_the_nearest_one(capsys, argv, typo, nearest):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unrecognized argument {typo} (did you mean {nearest}?)" in err
    assert "required" not in err and "Traceback" not in err


def test_help_defaults_say_what_they_are(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"default [1-9][0-9]* = off", out)  # a non-zero default that claims to be "off"
    assert "PREFIX_CACHE_MB" in out


def _fake_checkout(tmp_path, monkeypatch, *, pyproject=True):
    checkout = tmp_path / "clone"
    (checkout / "hero_gym").mkdir(parents=True)
    if pyproject:
        (checkout / "pyproject.toml").write_text("")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.setattr(data, "__file__", str(checkout / "hero_gym" / "data.py"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_data_dir_order_env_then_shared_beside_checkout_then_cache(tmp_path, monkeypatch):
    _fake_checkout(tmp_path, monkeypatch)
    assert data.data_dir() == tmp_path / "shared" / "data"  # where `make test` finds it
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "mine"))
    assert data.data_dir_source() == (tmp_path / "mine", "$HERO_GYM_DATA")


def test_data_dir_of_an_installed_package_is_the_cache(tmp_path, monkeypatch):
    _fake_checkout(tmp_path, monkeypatch, pyproject=False)  # site-packages: no checkout around it
    assert data.data_dir() == tmp_path / "home" / ".cache" / "hero_gym" / "data"


def test_data_list_says_where_it_looks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data_main(["list"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"data directory: {tmp_path} ($HERO_GYM_DATA)") and "beside the source checkout" in first


def test_verify_counts_the_installed_tau2_wheels(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))  # an empty data directory: only the wheels hold tau2
    packaged = sum(len(data.candidate_paths("tau2", f["path"])) > 1 and data.candidate_paths("tau2", f["path"])[1]
                   .is_file() for f in data.manifest("tau2")["files"])
    assert packaged, "the tau2 data wheels (extra tau2-data) are part of the dev install"
    assert data_main(["verify"]) == 0
    out = capsys.readouterr().out
    assert f"tau2: ok ({packaged}/11 files present, {packaged} of them from installed data packages)" in out
    assert "tau-v1: not downloaded" in out
    assert data_main(["verify", "tau2"]) == (0 if packaged == 11 else 1)  # named: every file must be there
