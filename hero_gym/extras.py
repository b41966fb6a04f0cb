"""Optional extras: the core (envs, registry, rollouts, records, metrics) needs none of them.

A module that needs an extra calls :func:`require_extra` before importing it, so a user without the extra gets one
line that names what to install instead of a bare ``ModuleNotFoundError`` from deep inside an import chain.
"""

from __future__ import annotations

import importlib

# extra -> what it is for (shown in the error)
EXTRAS = {
    "train": "local models (smollm2, tiny, hf:) and the trainers",
    "plots": "figures (hero-gym plot)",
    "lora": "LoRA fine-tuning",
    "vllm": "vLLM serving",
    "ray": "Ray env workers",
    "trl": "the TRL adapter (hero_gym.integrations.trl)",
    "inspect": "the Inspect AI adapter (hero_gym.integrations.inspect_tasks)",
    "openenv": "the OpenEnv server and client (hero_gym.integrations.openenv)",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require_extra(extra: str, *modules: str) -> None:
    """Import each of `modules`; if one is missing, raise :class:`MissingExtraError` naming `extra`."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; extras: {sorted(EXTRAS)}")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise MissingExtraError(
                f"{EXTRAS[extra]} need(s) {name!r}, which is not installed ({e.__class__.__name__}: {e}); "
                f"install the extra: pip install 'hero-gym[{extra}]'"
            ) from e
