"""The package layout: envs/, agents/ and benchmarks/ import as hero_gym.envs / .agents / .benchmarks, and every package
ships."""

import importlib
import os
import tomllib
from pathlib import Path

import gymnasium as gym
import pytest

import hero_gym

ROOT = Path(__file__).resolve().parents[1]


def test_mapped_packages_import_from_the_top_level_folders():
    # Through the symlinks hero_gym/envs -> ../envs etc. (see pyproject.toml): the code that runs is the user's folder.
    for name in ("envs", "agents", "benchmarks"):
        assert Path(importlib.import_module(f"hero_gym.{name}").__file__).resolve().parent == ROOT / name
        assert (ROOT / "hero_gym" / name).is_symlink() and (ROOT / "hero_gym" / name).resolve() == ROOT / name
    assert (ROOT / "src" / "hero_gym").resolve() == ROOT / "hero_gym"


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    src = ROOT / cfg["package-dir"][""]
    found = set()
    for folder, _, files in os.walk(src, followlinks=True):
        if "__init__.py" in files:
            found.add(".".join(Path(folder).relative_to(src).parts))
    assert "hero_gym.envs.webshop" in found and "hero_gym.agents" in found
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_registry_ids_are_gymnasium_ids():
    for env_id in hero_gym.ENV_SPECS:
        assert env_id in gym.registry


def test_unknown_env_and_split_give_clear_errors():
    with pytest.raises(ValueError, match="unknown environment"):
        hero_gym.make("hero_gym/Nope-v0")
    with pytest.raises(ValueError, match="no split"):
        hero_gym.make("hero_gym/TauAirline-v0", split="train")
