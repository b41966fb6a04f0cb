"""Evaluating a trained model on another env after training (Table 1's out-of-domain column: trained on
TauBench-Retail, evaluated on TauBench-Airline), inside the same process, with the trainer's live model.

Why not a later `hero-gym eval --policy hf:OUT/model`: that works too, but one command per run is what the recipe
files promise, and the trainer already holds the model on its GPU. The records go to ``OUT/ood/<env>/eval/final``
(the same RunStore layout as the in-domain ``OUT/eval/final``, resumable, method and train_budget set).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hero_gym.agents.base import TrainConfig


def ood_config(config: TrainConfig, env_id: str, split: str, tasks: list[int] | None) -> TrainConfig:
    """The run's config pointed at another env's split: same model settings, user (env_kwargs) and eval_k; the
    turn cap is the new env's default (a cap chosen for the training env need not suit it)."""
    return dataclasses.replace(config, env_id=env_id, eval_split=split, eval_tasks=tasks, eval_max_turns=None,
                               split=split, tasks=None)


def ood_dir(out_dir: str | Path, env_id: str) -> Path:
    """Where the out-of-domain evaluation of a run lives: OUT/ood/<env name without namespace>."""
    return Path(out_dir) / "ood" / env_id.rsplit("/", 1)[-1]


def evaluate_out_of_domain(trainer, env_id: str, split: str, tasks: list[int] | None) -> Path:
    """Evaluate `trainer`'s current model on `env_id`/`split` (eval_k attempts per task); returns the run store."""
    cfg = ood_config(trainer.config, env_id, split, tasks)
    cfg.validate()
    saved = trainer.config, trainer.out_dir
    # Trainer.evaluate reads the env, split and directory from these two attributes; swap them for one call.
    trainer.config, trainer.out_dir = cfg, ood_dir(saved[1], env_id)
    try:
        return trainer.evaluate(final=True)
    finally:
        trainer.config, trainer.out_dir = saved
