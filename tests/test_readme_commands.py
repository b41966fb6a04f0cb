"""Every shell command in the README's ```bash blocks runs as pasted (with the substitutions below), in order, in a
scratch directory, so the README cannot drift from the tools.

Substitutions keep the commands' shape and shrink only what makes them long or needs the network; each is
justified in SUBSTITUTIONS. A command added to the README with no substitution runs as written, so a new long
command fails this test (by time) until a row is added here.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hero_gym.data import list_datasets

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HERO_GYM = str(Path(sys.executable).with_name("hero-gym"))

# (regex on the command, replacement, why). Applied to every command in turn; `None` as replacement skips it.
SUBSTITUTIONS = [
    (r"^make (demo|test)$", None,
     "the first screen: test_readme.py checks the targets exist and CI runs `make test` itself (running it here "
     "would recurse into this suite; the demo takes ~8 minutes)"),
    (r"--policy smollm2", "--policy random",
     "SmolLM2 on CPU takes minutes per episode; the command's shape (flags, --out layout) is what is checked"),
    (r"--model smollm2", "--model tiny",
     "the tiny test model trains in seconds; the trainer code path is the same"),
    (r"--method sft", "--method sft --model tiny",
     "the warm start trains the default SmolLM2 for minutes; the tiny model runs the same SFT code path"),
    (r"--k 4", "--k 2", "2 attempts still give pass^k and paired attempts; 4 only cost time"),
    (r"(hero-gym eval .*)$", r"\1 --limit 3 --no-progress", "3 of the 500 test tasks, no progress bar in a log"),
    (r"^(hero-gym train --method hero .*)--steps 10",
     r"\1--steps 3 --tasks 0-1 --tasks-per-step 1 --max-new-tokens 8 "
     r"""--reflector 'scripted:{"turn": 1, "necessary": false, "cause": "it clicked before it searched"}'""",
     "three short steps, so that `plot credit --step 3` has its step; the tiny model's own reflections are noise "
     "that diagnoses no turn (nothing distilled, nothing to draw), so a scripted reflector diagnoses each first turn"),
    (r"--steps 10", "--steps 1 --tasks 0-1 --tasks-per-step 1 --max-new-tokens 8", "one optimiser step on 2 training tasks, short turns"),
    (r"--eval-tasks 0-19", "--eval-tasks 0-1", "2 evaluation tasks still write eval/final"),
    (r"--methods hero,sdpo,full-demo,grpo", "--methods sdpo,grpo",
     "two methods are enough for the sweep's layout and the budget-sweep plot (train covers hero)"),
    (r"^(hero-gym data download \S+)$", r"\1 --dest {data}",
     "no network in tests: downloading into a data directory that already holds the pinned files verifies them "
     "and fetches nothing"),
    (r"^hero-gym data download webshop-full.*$", "hero-gym data download --help",
     "the 5.5 GB catalogue cannot be fetched in a test; the dataset name is checked against the manifests instead"),
]


def _commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            cmd = re.split(r"\s+#", line)[0].strip()
            if cmd:
                out.append(cmd)
    return out


def _substitute(cmd: str, data: Path) -> str | None:
    for pattern, repl, _ in SUBSTITUTIONS:
        if re.search(pattern, cmd):
            if repl is None:
                return None
            cmd = re.sub(pattern, repl.replace("{data}", str(data)), cmd)
    return cmd


def test_every_substitution_is_used_and_justified():
    cmds = _commands()
    for pattern, _, why in SUBSTITUTIONS:
        assert len(why) > 20, pattern
        assert any(re.search(pattern, c) for c in cmds), f"substitution {pattern!r} matches no README command"
    assert "webshop-full" in list_datasets() and any("data download webshop-full" in c for c in cmds)


@pytest.mark.slow
def test_every_readme_shell_command_runs(tmp_path):
    src = Path(__import__("hero_gym.data", fromlist=["data_dir"]).data_dir())
    data = tmp_path / "data"  # a private copy: `data download --dest` may write
    for name in ("tau", "webshop"):
        shutil.copytree(src / name, data / name, ignore=shutil.ignore_patterns("*full*", "items_shuffle.json",
                                                                                 "items_ins_v2.json"))
    work = tmp_path / "work"
    work.mkdir()
    env = {**__import__("os").environ, "HERO_GYM_DATA": str(data), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    ran = 0
    for original in _commands():
        cmd = _substitute(original, data)
        if cmd is None:
            continue
        assert cmd.startswith("hero-gym "), f"README command not covered: {original!r}"
        # the shell expands globs (runs/sweep/*/eval/final) as it would for the reader
        line = f"{shlex.quote(HERO_GYM)} {cmd[len('hero-gym '):]}"
        proc = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"README command failed: {original!r}\n(ran: {cmd})\n{proc.stderr[-2000:]}"
        ran += 1
    assert ran >= 12
    assert (work / "runs" / "sweep" / "budget_sweep.pdf").read_bytes().startswith(b"%PDF")
    assert (work / "tasks.pdf").is_file() and (work / "smol.jsonl").is_file() and (work / "cmp.md").is_file()
    assert (work / "credit.png").read_bytes().startswith(b"\x89PNG")
    assert all((work / f).is_file() for f in ("runs/smol/report.html", "runs/hero/report.html", "smol_vs_oracle.html"))
