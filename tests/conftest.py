import os
from pathlib import Path

# Tests read the reference data beside the clone unless the caller points elsewhere.
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("HERO_GYM_DATA") and _shared.is_dir():
    os.environ["HERO_GYM_DATA"] = str(_shared)

import torch  # noqa: E402

# Two cores: oversubscribed torch threads make train steps ~15x slower (see shared/docs/cpu-models.md).
torch.set_num_threads(1)
