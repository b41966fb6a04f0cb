"""SDPO, environment feedback only: the teacher sees the raw observation that followed the student's action.

Every agent turn with a non-empty next observation is distilled (so G = 1 works); divergence, top-K and teacher
weights follow SDPO's published defaults (JSD alpha 0.5, top-100 with a tail bucket, EMA teacher rate 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

from hero_gym.agents.distill import DistillConfig, SelfDistillTrainer, load_prompt
from hero_gym.agents.context import outcome_text
from hero_gym.types import Trajectory


@dataclass
class SDPOConfig(DistillConfig):
    """SDPO (environment-feedback-only) settings."""

    template: str = "sdpo_teacher_v1"
    """Teacher template in agents/prompts (fields: {observation})."""
    include_outcome: bool = False
    """Also tell the teacher the episode's final outcome (off: the baseline is observation only)."""


class SDPOTrainer(SelfDistillTrainer):
    """Self-distillation with the next observation as the teacher's privileged feedback."""

    method_name = "sdpo"
    method_config: SDPOConfig

    def default_method_config(self) -> SDPOConfig:
        return SDPOConfig()

    def prepare(self) -> None:
        super().prepare()
        self.template = load_prompt(self.method_config.template)

    def privileged_block(self, traj: Trajectory, turn: int, group: list[Trajectory]) -> str | None:
        obs = traj.turns[turn].observation
        if not obs or not obs.strip():
            return None
        block = self.template.format(observation=obs.strip())
        if self.method_config.include_outcome:
            block += f"\nHow the episode ended: {outcome_text(traj)}"
        return block
