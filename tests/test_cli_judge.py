"""`--judge`: a judge policy scores tau2's NL assertions through the harness; without one they are not evaluated.

Test task 9 of tau2 retail is the first with non-empty nl_assertions (most have none, which scores 1.0 as upstream)."""

import json
import sys

import pytest

from hero_gym.evaluate import run_eval


def _write_judge(tmp_path, verdict: bool):
    (tmp_path / "my_judge.py").write_text(
        "import json, re\n"
        "def make(**kw):\n"
        "    def judge(messages, tools):\n"
        "        n = len(re.findall(r'^- ', messages[-1]['content'], re.M))\n"
        f"        return json.dumps({{'results': [{{'metExpectation': {verdict!r}}}] * n}})\n"
        "    return judge\n")


@pytest.mark.parametrize("verdict", [True, False])
def test_judge_decides_the_nl_component(tmp_path, monkeypatch, verdict):
    _write_judge(tmp_path, verdict)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_judge", None)
    store = run_eval("hero_gym/Tau2Retail-v0", "oracle", tmp_path / "run", tasks=[9], judge="my_judge:make",
                     progress=False)
    (rec,) = store.load()
    info = rec.trajectory["reward_info"]
    assert "NL_ASSERTION" in json.dumps(info)
    assert "NL_ASSERTION" not in info.get("not_evaluated", [])
    assert rec.reward == (1.0 if verdict else 0.0)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["judge"] == "my_judge:make"


def test_without_judge_nl_is_reported_not_evaluated(tmp_path):
    store = run_eval("hero_gym/Tau2Retail-v0", "oracle", tmp_path / "run", tasks=[9], progress=False)
    (rec,) = store.load()
    assert "NL_ASSERTION" in rec.trajectory["reward_info"]["not_evaluated"]


def test_judge_on_an_env_without_nl_assertions_is_refused(tmp_path):
    with pytest.raises(ValueError, match="NL assertions"):
        run_eval("hero_gym/TauRetail-v0", "oracle", tmp_path / "run", tasks=[0], judge="oracle", progress=False)
