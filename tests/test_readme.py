"""The README's promises: the two first-screen commands exist, and the plug-in agent example runs as written."""

import re
import sys
from pathlib import Path

from hero_gym.policies.scripted import load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_first_screen_has_the_two_make_commands_and_ci_runs_the_test_one():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci.splitlines()[-1]


def test_plugin_agent_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(# my_agent\.py.*?)```", README, re.S).group(1)
    (tmp_path / "my_agent.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_agent", None)
    policy = load_policy("my_agent:make", env_id="hero_gym/TauRetail-v0")
    (traj,) = run_episodes("hero_gym/TauRetail-v0", policy, [EpisodeSpec(task_index=0, seed=0)],
                           env_kwargs={"max_turns": 3})
    assert traj.num_turns >= 1 and traj.error is None
    assert traj.messages[-1]["role"] in ("user", "tool", "assistant")
