"""hero-gym trainers: GRPO, SDPO, Full-Demo and HERO over one trajectory format and one trainer base.

>>> from hero_gym.agents import TrainConfig, make_trainer            # doctest: +SKIP
>>> trainer = make_trainer(TrainConfig(method="hero", env_id="hero_gym/WebShop-v0", model="tiny", steps=2))
>>> trainer.train()                                                   # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from hero_gym.extras import require_extra

require_extra("train", "torch", "transformers")

from hero_gym.agents.base import METHODS, TRAIN_METHODS, TrainConfig, Trainer  # noqa: E402

__all__ = ["METHODS", "TRAIN_METHODS", "TrainConfig", "Trainer", "trainer_class", "method_config_class", "make_trainer"]


# method -> (module, Trainer subclass, config dataclass of the method's own settings); imported on first use
_CLASSES = {
    "grpo": ("hero_gym.agents.grpo", "GRPOTrainer", "GRPOConfig"),
    "sdpo": ("hero_gym.agents.sdpo", "SDPOTrainer", "SDPOConfig"),
    "full-demo": ("hero_gym.agents.full_demo", "FullDemoTrainer", "FullDemoConfig"),
    "hero": ("hero_gym.agents.hero", "HEROTrainer", "HEROConfig"),
    "sft": ("hero_gym.agents.sft", "SFTTrainer", "SFTConfig"),
}


def _method_class(method: str, which: int):
    if method not in tuple(_CLASSES):  # compared with ==, as the if-chain this replaces did (no hashing)
        raise ValueError(f"unknown method {method!r}; choose one of {TRAIN_METHODS}")
    entry = _CLASSES[method]
    return getattr(importlib.import_module(entry[0]), entry[which])


def trainer_class(method: str):
    """The Trainer subclass of `method` (grpo, sdpo, full-demo, hero, sft)."""
    return _method_class(method, 1)


def method_config_class(method: str):
    """The config dataclass of `method`'s own settings."""
    return _method_class(method, 2)


def make_trainer(config: TrainConfig, method_config=None, **kwargs) -> Trainer:
    """Build the trainer of ``config.method`` (kwargs go to its constructor: model, tokenizer, rollout_fn, ...)."""
    return trainer_class(config.method)(config, method_config, **kwargs)
