"""HERO: hindsight reflection turns each next observation into a compact turn-level diagnosis for the teacher.

After the rollouts, a reflector (the policy model itself by default, any Policy by option) reads each whole
trajectory with its final outcome and writes one diagnosis per agent turn (necessity, validity, failure cause,
optional corrected action). The teacher's privileged block for turn t = the observation that followed the action
+ that turn's diagnosis + the final outcome. Only diagnosed turns are distilled, with JSD (alpha 0.5).

Choices where the paper's settings are unknown (see agents/RECIPE.md): top-100 logits with a tail bucket and an
EMA teacher (SDPO's defaults, on the same stack as the authors' sibling project), greedy reflection with 64 output
tokens per turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from hero_gym.agents.context import outcome_text, render_trajectory
from hero_gym.agents.diagnosis import Diagnosis, parse_diagnoses, parse_turn_review
from hero_gym.agents.distill import DistillConfig, SelfDistillTrainer, load_prompt
from hero_gym.policies.base import ChatRequest, Policy
from hero_gym.types import Trajectory


@dataclass
class HEROConfig(DistillConfig):
    """HERO settings."""

    reflect_mode: str = "trajectory"
    """trajectory: one reflection per trajectory writing a JSON line per turn (the paper's pass); per_turn: one
    short free-text review per agent turn (more requests, but small models manage it; see RECIPE.md)."""
    reflect_template: str = "hero_reflect_v1"
    """Reflection prompt in agents/prompts (fields: {transcript}, {outcome}, {num_turns})."""
    reflect_turn_template: str = "hero_reflect_turn_v1"
    """Per-turn reflection prompt (fields: {transcript}, {outcome}, {turn}, {action})."""
    teacher_template: str = "hero_teacher_v1"
    """Teacher template in agents/prompts (fields: {observation}, {diagnosis}, {outcome})."""
    reflect_temperature: float = 0.0
    """Reflector sampling temperature (0 = greedy)."""
    reflect_tokens_per_turn: int = 64
    """Reflector output budget per agent turn (the request's max_new_tokens = this x turns, capped below)."""
    reflect_max_new_tokens: int = 2048
    """Upper cap on the reflector's output tokens for one trajectory."""
    max_transcript_chars_per_message: int = 1500
    """Per-message character cap in the transcript the reflector reads."""
    max_transcript_chars: int = 24000
    """Whole-transcript cap (~6k tokens): longer episodes get a proportionally smaller per-message cap."""

    def validate(self, train) -> None:
        super().validate(train)
        if self.reflect_mode not in ("trajectory", "per_turn"):
            raise ValueError(f"reflect_mode must be trajectory or per_turn, got {self.reflect_mode!r}")


class HEROTrainer(SelfDistillTrainer):
    """Self-distillation on turns the reflector diagnosed, teacher conditioned on observation + diagnosis + outcome."""

    method_name = "hero"
    method_config: HEROConfig

    def __init__(self, config, method_config: HEROConfig | None = None, *, reflector: Policy | None = None, **kwargs):
        if reflector is not None and not isinstance(reflector, Policy):
            raise TypeError(f"reflector must implement the Policy protocol (name + generate), got {type(reflector).__name__}")
        self._reflector = reflector
        super().__init__(config, method_config or HEROConfig(), **kwargs)

    def default_method_config(self) -> HEROConfig:
        return HEROConfig()

    def prepare(self) -> None:
        super().prepare()
        self.reflect_template = load_prompt(self.method_config.reflect_template)
        self.reflect_turn_template = load_prompt(self.method_config.reflect_turn_template)
        self.teacher_template = load_prompt(self.method_config.teacher_template)
        self._diagnoses: dict[int, dict[int, Diagnosis]] = {}

    @property
    def reflector(self) -> Policy:
        """The reflector policy: the one given, else the training policy itself (self-reflection)."""
        return self._reflector if self._reflector is not None else self.policy

    def _transcript(self, traj: Trajectory) -> str:
        mc = self.method_config
        per_message = mc.max_transcript_chars_per_message
        transcript = render_trajectory(traj, per_message)
        # Long episodes: shrink every message alike so each turn stays visible (the reflector judges every turn).
        while len(transcript) > mc.max_transcript_chars and per_message > 100:
            per_message = max(100, int(per_message * mc.max_transcript_chars / len(transcript) * 0.9))
            transcript = render_trajectory(traj, per_message)
        return transcript

    def reflection_request(self, traj: Trajectory) -> ChatRequest:
        """The reflector's prompt for one finished trajectory (trajectory mode)."""
        mc = self.method_config
        prompt = self.reflect_template.format(transcript=self._transcript(traj), outcome=outcome_text(traj),
                                              num_turns=traj.num_turns)
        budget = min(mc.reflect_max_new_tokens, mc.reflect_tokens_per_turn * max(1, traj.num_turns))
        return self._request(prompt, budget, traj)

    def turn_reflection_requests(self, traj: Trajectory) -> list[ChatRequest]:
        """One prompt per agent turn (per_turn mode)."""
        mc = self.method_config
        transcript, outcome = self._transcript(traj), outcome_text(traj)
        return [self._request(self.reflect_turn_template.format(transcript=transcript, outcome=outcome, turn=t + 1,
                                                                action=turn.action), mc.reflect_tokens_per_turn, traj)
                for t, turn in enumerate(traj.turns)]

    def _request(self, prompt: str, max_new_tokens: int, traj: Trajectory) -> ChatRequest:
        return ChatRequest(messages=[{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens,
                           temperature=self.method_config.reflect_temperature,
                           context={"purpose": "hero_reflection", "env_id": traj.env_id, "task_index": traj.task_index})

    def prepare_groups(self, groups: list[list[Trajectory]]) -> None:
        trajs = [t for g in groups for t in g if t.turns]
        self._diagnoses = {}
        if not trajs:
            return
        per_turn = self.method_config.reflect_mode == "per_turn"
        requests = [r for t in trajs for r in self.turn_reflection_requests(t)] if per_turn else \
            [self.reflection_request(t) for t in trajs]
        was_training = self.model.training
        self.model.eval()
        gens = self.reflector.generate(requests)
        self.model.train(was_training)
        if len(gens) != len(requests):
            raise RuntimeError(f"reflector returned {len(gens)} generations for {len(requests)} requests")
        if per_turn:
            self._read_turn_reviews(trajs, gens)
            return
        for traj, gen in zip(trajs, gens):
            if gen.error:
                self.count("reflection_errors")
                res = parse_diagnoses("", traj.num_turns)
            else:
                res = parse_diagnoses(gen.text or "", traj.num_turns)
            self._diagnoses[id(traj)] = res.diagnoses
            self.count("diagnosed_turns", len(res.diagnoses))
            self.count("undiagnosed_turns", res.missing(traj.num_turns))
            self.count("diagnoses_out_of_range", res.out_of_range)
            self.count("diagnoses_unreadable", res.unreadable)

    def _read_turn_reviews(self, trajs: list[Trajectory], gens) -> None:
        it = iter(gens)
        for traj in trajs:
            found = {}
            for t in range(traj.num_turns):
                gen = next(it)
                if gen.error:
                    self.count("reflection_errors")
                    continue
                d = parse_turn_review(gen.text or "", t)
                if d is not None:
                    found[t] = d
            self._diagnoses[id(traj)] = found
            self.count("diagnosed_turns", len(found))
            self.count("undiagnosed_turns", traj.num_turns - len(found))

    def privileged_block(self, traj: Trajectory, turn: int, group: list[Trajectory]) -> str | None:
        diag = self._diagnoses.get(id(traj), {}).get(turn)
        if diag is None:
            return None
        return self.teacher_template.format(observation=(traj.turns[turn].observation or "(no reply)").strip(),
                                            diagnosis=diag.to_text(), outcome=outcome_text(traj))
