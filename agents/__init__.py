"""hero-gym trainers: GRPO, SDPO, Full-Demo and HERO over one trajectory format and one trainer base.

>>> from hero_gym.agents import TrainConfig, make_trainer            # doctest: +SKIP
>>> trainer = make_trainer(TrainConfig(method="hero", env_id="hero_gym/WebShop-v0", model="tiny", steps=2))
>>> trainer.train()                                                   # doctest: +SKIP
"""

from __future__ import annotations

from hero_gym.agents.base import METHODS, TrainConfig, Trainer

__all__ = ["METHODS", "TrainConfig", "Trainer", "trainer_class", "method_config_class", "make_trainer"]


def trainer_class(method: str):
    """The Trainer subclass of `method` (grpo, sdpo, full-demo, hero)."""
    if method == "grpo":
        from hero_gym.agents.grpo import GRPOTrainer as cls
    elif method == "sdpo":
        from hero_gym.agents.sdpo import SDPOTrainer as cls
    elif method == "full-demo":
        from hero_gym.agents.full_demo import FullDemoTrainer as cls
    elif method == "hero":
        from hero_gym.agents.hero import HEROTrainer as cls
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return cls


def method_config_class(method: str):
    """The config dataclass of `method`'s own settings."""
    if method == "grpo":
        from hero_gym.agents.grpo import GRPOConfig as cls
    elif method == "sdpo":
        from hero_gym.agents.sdpo import SDPOConfig as cls
    elif method == "full-demo":
        from hero_gym.agents.full_demo import FullDemoConfig as cls
    elif method == "hero":
        from hero_gym.agents.hero import HEROConfig as cls
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return cls


def make_trainer(config: TrainConfig, method_config=None, **kwargs) -> Trainer:
    """Build the trainer of ``config.method`` (kwargs go to its constructor: model, tokenizer, rollout_fn, ...)."""
    return trainer_class(config.method)(config, method_config, **kwargs)
