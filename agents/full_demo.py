"""Full-Demo privileged teacher: the teacher sees a complete successful trajectory of the same task.

The demonstration is a successful sibling rollout of the same group (the first one that is not the trajectory
itself, as SDPO does), or the env's oracle trajectory when configured. A trajectory with no demonstration gets
no loss; such trajectories are counted (``total_trajectories_without_demo`` in the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hero_gym.agents.context import render_trajectory
from hero_gym.agents.distill import DistillConfig, SelfDistillTrainer, load_prompt
from hero_gym.types import Trajectory

DEMO_SOURCES = ("sibling", "oracle", "sibling_then_oracle")
HINT_ALIGNS = ("turn", "page")


@dataclass
class FullDemoConfig(DistillConfig):
    """Full-Demo settings."""

    template: str = "full_demo_teacher_v1"
    """Teacher template in agents/prompts (fields: {demonstration})."""
    demo_source: str = "sibling"
    """sibling (a successful rollout of the same group), oracle (the env's scripted oracle run on the task, or the
    trainer's `oracle_fn`) or sibling_then_oracle (oracle only when no sibling succeeded)."""
    success_threshold: float = 0.5
    """A sibling counts as successful when its reward reaches this (SDPO's effective default 0.5)."""
    reprompt_on_self_success: bool = False
    """Allow a successful trajectory to be its own demonstration (SDPO's default: no)."""
    max_demo_chars_per_message: int = 1000
    """Per-message character cap when the demonstration is rendered as text."""
    demo_step_hint: bool = False
    """End the teacher's block for turn t with the demonstration's action at turn t ("In the worked example, the
    action at this step was: ..."), so the teacher knows where in the demonstration the student stands. Tried
    against Full-Demo's collapse to click[buy now] at lr 1e-4 on SmolLM2-135M: it did not prevent it (a lower
    learning rate did; results/sweep-cpu-webshop-warmstart/README.md)."""
    demo_hint_align: str = "turn"
    """How demo_step_hint finds the demonstration's step for student turn t. turn: the demonstration's turn t.
    page: the first demonstration turn taken from the page the student is on (the same observation text) whose
    action the student has not already taken on that page; no hint when the demonstration never showed that page.
    By turn index, the hint named another page's step on most turns of a WebShop run whose student was off the
    demonstration's path (results/sweep-cpu-webshop-warmstart/README.md, session 11); WebShop's option clicks leave
    the page text unchanged, so "page" names the option still missing."""

    def validate(self, train) -> None:
        super().validate(train)
        if self.demo_source not in DEMO_SOURCES:
            raise ValueError(f"demo_source must be one of {DEMO_SOURCES}, got {self.demo_source!r}")
        if self.demo_hint_align not in HINT_ALIGNS:
            raise ValueError(f"demo_hint_align must be one of {HINT_ALIGNS}, got {self.demo_hint_align!r}")


def page_before(traj: Trajectory, turn: int) -> str:
    """The observation the agent acted on at `turn`."""
    return traj.initial_observation if turn == 0 else traj.turns[turn - 1].observation


def page_aligned_step(demo: Trajectory, traj: Trajectory, turn: int) -> int | None:
    """The demonstration turn for `traj`'s `turn` by page (FullDemoConfig.demo_hint_align = "page"), or None."""
    page = page_before(traj, turn)
    taken, k = set(), turn - 1
    while k >= 0 and page_before(traj, k) == page:  # what the student already did on this page
        taken.add(traj.turns[k].action)
        k -= 1
    for j in range(len(demo.turns)):
        if page_before(demo, j) == page and demo.turns[j].action not in taken:
            return j
    return None


class FullDemoTrainer(SelfDistillTrainer):
    """Self-distillation with a full successful trajectory of the task as privileged context."""

    method_name = "full-demo"
    method_config: FullDemoConfig

    def __init__(self, config, method_config: FullDemoConfig | None = None, *,
                 oracle_fn: Callable[[Trajectory], Trajectory | None] | None = None, **kwargs):
        self.oracle_fn = oracle_fn
        super().__init__(config, method_config, **kwargs)

    def default_method_config(self) -> FullDemoConfig:
        return FullDemoConfig()

    def prepare(self) -> None:
        super().prepare()
        mc = self.method_config
        if mc.demo_source != "sibling" and self.oracle_fn is None:
            self.oracle_fn = self._env_oracle
        self._oracle_cache: dict[tuple, Trajectory | None] = {}
        self.template = load_prompt(mc.template)
        self._demos: dict[int, str | None] = {}
        self._demo_trajs: dict[int, Trajectory] = {}

    def _env_oracle(self, traj: Trajectory) -> Trajectory | None:
        """The env's scripted oracle run on the same task (env's default turn cap), cached per task."""
        key = (traj.split, traj.task_index)
        if key not in self._oracle_cache:
            from hero_gym.agents.base import make_episode_spec
            from hero_gym.policies.scripted import load_policy

            oracle = load_policy("oracle", env_id=self.config.env_id)
            [demo] = self.rollout_fn(self.config.env_id, oracle, [make_episode_spec(traj.task_index, 0, traj.split)],
                                     env_kwargs=dict(self.config.env_kwargs), max_new_tokens=self.config.max_new_tokens)
            self._oracle_cache[key] = demo if not demo.error else None
        return self._oracle_cache[key]

    def find_demo(self, traj: Trajectory, group: list[Trajectory]) -> Trajectory | None:
        """The demonstration for `traj`, or None."""
        mc = self.method_config
        if mc.demo_source in ("sibling", "sibling_then_oracle"):
            for other in group:
                if other.reward >= mc.success_threshold and (other is not traj or mc.reprompt_on_self_success):
                    return other
        if mc.demo_source in ("oracle", "sibling_then_oracle"):
            demo = self.oracle_fn(traj)
            if demo is not None and demo.reward >= mc.success_threshold:
                return demo
        return None

    @property
    def selection_stats(self) -> dict:
        return {"trajectories_without_demo": sum(v is None for v in self._demos.values())}

    def prepare_groups(self, groups: list[list[Trajectory]]) -> None:
        self._demos, self._demo_trajs = {}, {}
        for group in groups:
            for traj in group:
                demo = self.find_demo(traj, group)
                if demo is None:
                    self.count("trajectories_without_demo")
                    self._demos[id(traj)] = None
                else:
                    text = render_trajectory(demo, self.method_config.max_demo_chars_per_message)
                    self._demos[id(traj)] = self.template.format(demonstration=text)
                    self._demo_trajs[id(traj)] = demo

    def privileged_block(self, traj: Trajectory, turn: int, group: list[Trajectory]) -> str | None:
        block = self._demos.get(id(traj))
        if block is None or not self.method_config.demo_step_hint:
            return block
        demo = self._demo_trajs[id(traj)]
        if self.method_config.demo_hint_align == "page":
            j = page_aligned_step(demo, traj, turn)
            if j is None:
                return block
            return f"{block}\nIn the worked example, on the page the agent is on now, the next action was: {demo.turns[j].action}"
        if turn < len(demo.turns):
            return f"{block}\nIn the worked example, the action at this step (turn {turn + 1}) was: {demo.turns[turn].action}"
        return f"{block}\nThe worked example had already ended at this step (turn {turn + 1})."
