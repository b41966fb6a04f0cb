"""The light install: hero-gym's core (envs, registry, rollouts, records, metrics) works in a venv without torch,
transformers or matplotlib, and each missing extra is named when something needs it.

The venv gets hero-gym's wheel (built here, checked for setuptools warnings about our own configuration) and the
core's declared dependencies with their own dependencies, linked from this environment's installed files, so
the test needs neither the network nor minutes of installing, yet sees exactly what ``pip install hero-gym`` brings.
"""

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from build_warnings import CALLER_SETTINGS, backend_warnings

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "matplotlib", "accelerate", "trl", "inspect_ai", "openenv")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names needed by `requirements` (no extras), following installed metadata."""
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in (md.distribution(req.name).requires or [])]
    return seen


def _link_distribution(name: str, site: Path) -> None:
    dist = md.distribution(name)
    base = Path(dist.locate_file(""))
    for f in dist.files or []:
        if f.parts[0] == ".." or f.suffix == ".pyc":
            continue  # console scripts live outside site-packages; bytecode is rebuilt
        dest = site / f
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(base / f)


SCRIPT = r'''
import sys
for name in %(heavy)r:
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable in the light venv")
import hero_gym
from hero_gym.policies import load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes
from hero_gym.benchmarks.stats import per_task  # noqa: F401  (metrics import without the extras)
for env_id in ("hero_gym/Tau2Retail-v0", "hero_gym/WebShop-v0"):
    (t,) = run_episodes(env_id, load_policy("oracle", env_id=env_id), [EpisodeSpec(task_index=0, seed=0)])
    assert t.error is None and t.reward == 1.0, (env_id, t.error, t.reward)
for what, extra in (("load_policy('smollm2')", "train"), ("__import__('hero_gym.benchmarks.plots')", "plots"),
                    ("__import__('hero_gym.agents')", "train"), ("__import__('hero_gym.integrations.trl')", "trl"),
                    ("__import__('hero_gym.integrations.openenv')", "openenv"),
                    ("__import__('hero_gym.integrations.inspect_tasks')", "inspect")):
    try:
        eval(what)
    except ImportError as e:
        assert f"hero-gym[{extra}]" in str(e), (what, str(e))
    else:
        raise SystemExit(f"{what} worked without its extra")
print("LIGHT OK", sorted(m for m in sys.modules if m.split(".")[0] in %(heavy)r))
'''


@pytest.mark.slow
def test_core_installs_and_runs_an_oracle_episode_without_torch(tmp_path):
    # 1. hero-gym's wheel; the build must not warn about our own pyproject.
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path / "whl"),
                            str(ROOT)], capture_output=True, text=True, timeout=600,
                           env={k: v for k, v in os.environ.items() if k not in CALLER_SETTINGS})
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = build.stdout + build.stderr
    assert not backend_warnings(log), "setuptools warns about our configuration:\n" + "\n".join(backend_warnings(log))
    (wheel,) = (tmp_path / "whl").glob("hero_gym-*.whl")

    # 2. a venv with the wheel and the core's dependency closure (no extras).
    env_dir = tmp_path / "light"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    needed = _closure(core)
    assert not needed & {_norm(h) for h in HEAVY}, f"the core pulls in {sorted(needed & set(HEAVY))}"
    for name in needed:
        _link_distribution(name, site)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)

    # 3. the core runs there, and every extra-only feature names its extra.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = subprocess.run([str(py), "-c", SCRIPT % {"heavy": HEAVY}], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0 and "LIGHT OK []" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    cli = subprocess.run([str(env_dir / "bin" / "hero-gym"), "eval", "--env", "hero_gym/WebShop-v0", "--policy",
                          "oracle", "--tasks", "0-1", "--out", str(tmp_path / "run"), "--no-progress"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0 and "mean@1" in cli.stdout, cli.stdout[-2000:] + cli.stderr[-2000:]
    train = subprocess.run([str(env_dir / "bin" / "hero-gym"), "train", "--method", "grpo", "--env",
                            "hero_gym/WebShop-v0", "--model", "tiny", "--steps", "1", "--out", str(tmp_path / "t")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode != 0 and "hero-gym[train]" in train.stderr and len(train.stderr.strip().splitlines()) == 1, \
        train.stderr[-2000:]
