import os
from pathlib import Path

import pytest

# Tests read the reference data beside the clone unless the caller points elsewhere.
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("HERO_GYM_DATA") and _shared.is_dir():
    os.environ["HERO_GYM_DATA"] = str(_shared)

import torch  # noqa: E402

# Two cores: oversubscribed torch threads make train steps ~15x slower (see shared/docs/cpu-models.md).
torch.set_num_threads(1)

# What the suite reads; `make test` fetches them first (`hero-gym data ensure`).
TEST_DATASETS = ["tau-v1", "tau2", "webshop-1k"]


def pytest_sessionstart(session):
    """Without the benchmark data most tests would fail one by one on a missing file: stop before the suite with
    one message naming what is missing and the command that gets it."""
    if os.environ.get("HERO_GYM_DATA_CHECK", "1") == "0":
        return
    from hero_gym.download import missing, missing_message

    gone = missing(TEST_DATASETS)
    if gone:
        pytest.exit(missing_message(gone) + " (HERO_GYM_DATA_CHECK=0 runs the suite anyway)",
                    returncode=pytest.ExitCode.USAGE_ERROR)
