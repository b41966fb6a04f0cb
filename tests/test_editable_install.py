"""`pip install -e .` (what `make setup` runs) prints no warnings about our own configuration, puts only the package
on sys.path (not the checkout, whose `agents/` would shadow other `agents` packages), and picks up a module added
after the install without reinstalling.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from build_warnings import CALLER_SETTINGS, backend_warnings

ROOT = Path(__file__).resolve().parents[1]


def test_backend_warning_patterns_match_what_setuptools_and_pip_print():
    # The lines the old package-dir mapping printed (pip 23 -v, pip 26), and pip's own index notice, which is not ours.
    assert backend_warnings("  editable_wheel.py:354: InformationOnly: Editable installation.\n  !!\n")
    assert backend_warnings("  editable_wheel.py:354: BuildBackendWarning: Editable installation.")
    assert backend_warnings("  warning: build_py: byte-compiling is disabled, skipping.")
    # ... and what the license table and the data folders printed before (test_light_install builds the wheel).
    assert backend_warnings("  SetuptoolsDeprecationWarning: License classifiers are deprecated.")
    assert backend_warnings("  _Warning: Package 'hero_gym.agents.prompts' is absent from the `packages` configuration.")
    assert not backend_warnings("  WARNING: Location 'file:///x/simple/wheel/' is ignored: it is neither a file nor a "
                                "directory.\n  Editable install will be performed using .pth file to extend `sys.path`")


@pytest.mark.slow
def test_editable_install_is_quiet_and_sees_new_modules(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # The dependencies come from this environment (a path line; its own .pth files, ours included, are not read).
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "zz_outer.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in CALLER_SETTINGS}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-v", "--no-deps", "-e",
                              str(ROOT)], capture_output=True, text=True, env=env, timeout=600)
    log = install.stdout + install.stderr
    assert install.returncode == 0, log[-3000:]
    assert not backend_warnings(log), "setuptools warns about our configuration:\n" + "\n".join(backend_warnings(log))

    new = ROOT / "envs" / f"_editable_probe_{os.getpid()}.py"
    new.write_text("VALUE = 'seen without reinstalling'\n")
    try:
        probe = subprocess.run([str(py), "-c", f"""
import importlib.util, sys
from pathlib import Path
assert not [p for p in sys.path if p and Path(p).resolve() == Path({str(ROOT)!r})], 'the checkout is on sys.path'
for name in ('agents', 'benchmarks'):  # found, not imported: importing the trainers means importing torch
    assert Path(importlib.util.find_spec('hero_gym.' + name).origin).resolve() == Path({str(ROOT)!r}, name, '__init__.py')
import hero_gym.envs.{new.stem} as m
print(m.VALUE)
"""], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        new.unlink()
    assert probe.returncode == 0 and "seen without reinstalling" in probe.stdout, probe.stdout + probe.stderr
