"""The package layout: envs/ and agents/ import as hero_gym.envs / hero_gym.agents, and every package ships."""

import importlib
import tomllib
from pathlib import Path

import gymnasium as gym
import pytest

import hero_gym

ROOT = Path(__file__).resolve().parents[1]


def test_mapped_packages_import_from_the_top_level_folders():
    assert Path(importlib.import_module("hero_gym.envs").__file__).parent == ROOT / "envs"
    assert Path(importlib.import_module("hero_gym.agents").__file__).parent == ROOT / "agents"


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_registry_ids_are_gymnasium_ids():
    for env_id in hero_gym.ENV_SPECS:
        assert env_id in gym.registry


def test_unknown_env_and_split_give_clear_errors():
    with pytest.raises(ValueError, match="unknown environment"):
        hero_gym.make("hero_gym/Nope-v0")
    with pytest.raises(ValueError, match="no split"):
        hero_gym.make("hero_gym/TauAirline-v0", split="train")
