"""HERO: hindsight reflection turns each next observation into a compact turn-level diagnosis for the teacher.

After the rollouts, a reflector (the policy model itself by default, any Policy by option) reads each whole
trajectory with its final outcome and writes one diagnosis per agent turn (necessity, validity, failure cause,
optional corrected action). The teacher's privileged block for turn t = the observation that followed the action
+ that turn's diagnosis + the final outcome. Only turns with an actionable diagnosis are distilled, with JSD
(alpha 0.5).

Turn selection: every agent turn ends in one of four classes, counted per step (``diagnosed_turns``,
``no_hint_turns``, ``echo_turns``, ``undiagnosed_turns``; ``selected_frac`` and ``echo_rate`` are their shares of
the batch's turns) and over the run (``total_*``):

- diagnosed: an actionable diagnosis (unnecessary, invalid, a cause, a correction other than the action itself, or
  a free-text review); only these get a teacher block;
- no hint: the reflector said the turn needs none ("NO HINT", or necessary + valid + cause none + no correction);
- echo: the reflection repeats its own prompt or itself (>= ``echo_threshold`` of its word ``echo_ngram``-grams
  occur in the prompt or earlier in the reflection; a shorter answer that the prompt contains word for word, such
  as the turn's own action), which small models do instead of judging the turn;
- undiagnosed: nothing readable (or a reflector error).

Choices where the paper's settings are unknown (see agents/RECIPE.md): top-100 logits with a tail bucket and an
EMA teacher (SDPO's defaults, on the same stack as the authors' sibling project), greedy reflection with 64 output
tokens per turn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from hero_gym.agents.context import outcome_text, render_trajectory
from hero_gym.agents.diagnosis import FORMAT_WORDS, Diagnosis, echo_score, parse_diagnoses, parse_turn_review
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
    reflect_turn_template: str = "hero_reflect_turn_v2"
    """Per-turn reflection prompt (fields: {transcript}, {outcome}, {turn}, {action}); v2 lets the reflector answer
    NO HINT for a turn that needs none (v1 always asks for a judgement)."""
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
    echo_threshold: float | None = 0.5
    """A reflection whose word n-grams come from its own prompt (or repeat its own earlier words) at this share or
    more is an echo, not a diagnosis (small models such as SmolLM2-135M often answer by repeating the prompt, or,
    fine-tuned on actions, with the turn's own action). None = no echo check."""
    echo_ngram: int = 4
    """n of the word n-grams the echo check compares."""

    def validate(self, train) -> None:
        super().validate(train)
        if self.reflect_mode not in ("trajectory", "per_turn"):
            raise ValueError(f"reflect_mode must be trajectory or per_turn, got {self.reflect_mode!r}")
        if self.echo_threshold is not None and not 0 < self.echo_threshold <= 1:
            raise ValueError(f"echo_threshold must be in (0, 1] or None, got {self.echo_threshold}")
        if isinstance(self.echo_ngram, bool) or not isinstance(self.echo_ngram, int) or self.echo_ngram < 1:
            raise ValueError(f"echo_ngram must be a positive integer, got {self.echo_ngram!r}")


class HEROTrainer(SelfDistillTrainer):
    """Self-distillation on turns the reflector diagnosed, teacher conditioned on observation + diagnosis + outcome."""

    method_name = "hero"
    method_config: HEROConfig
    rate_stats = {"selected_frac": ("scored_turns", "turns"), "echo_rate": ("echo_turns", "turns")}
    TURN_CLASSES = ("diagnosed_turns", "no_hint_turns", "echo_turns", "undiagnosed_turns")

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
        self._selection: dict[str, int] = {}
        self._warned_no_diagnosis = False

    @property
    def selection_stats(self) -> dict:
        return dict(self._selection)

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
        self._selection = {k: 0 for k in ("reflections",) + self.TURN_CLASSES}
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
        self._selection["reflections"] = len(gens)
        pairs = iter(zip(requests, gens))
        for traj in trajs:
            if per_turn:
                judged = [self._judge_turn_review(traj, t, *next(pairs)) for t in range(traj.num_turns)]
            else:
                judged = self._judge_trajectory_reflection(traj, *next(pairs))
            self._diagnoses[id(traj)] = {t: d for t, (kind, d) in enumerate(judged) if kind == "diagnosed_turns"}
            for kind, _ in judged:
                self._selection[kind] += 1
                self.count(kind)
        sel = self._selection
        # A step whose turns all needed no hint is a judgement; one with nothing but echoes and unreadable answers
        # means the reflector cannot review.
        unjudged = sel["echo_turns"] + sel["undiagnosed_turns"]
        if not sel["diagnosed_turns"] and unjudged and not self._warned_no_diagnosis:
            self._warned_no_diagnosis = True  # once a run: the counts are logged every step
            rest = "only the rl_coef term trains" if self.method_config.rl_coef > 0 else "nothing is distilled"
            n = sum(sel[k] for k in self.TURN_CLASSES)
            warnings.warn(f"HERO step {self.step + 1}: the reflector diagnosed none of {n} turns ({sel['echo_turns']} "
                          f"echoes of its prompt, {sel['no_hint_turns']} needing no hint, {sel['undiagnosed_turns']} "
                          f"unreadable), so {rest}. A policy fine-tuned only on actions writes actions, not "
                          "reviews: pass a reflector that reviews (--reflector).", RuntimeWarning, stacklevel=2)

    def is_echo(self, text: str, request: ChatRequest, ignore: frozenset = frozenset(),
                self_repeats: bool = True) -> bool:
        """Whether `text` mostly repeats the reflector's prompt or itself (see HEROConfig.echo_threshold)."""
        mc = self.method_config
        if mc.echo_threshold is None:
            return False
        score = echo_score(text, request.messages[-1]["content"], mc.echo_ngram, ignore, self_repeats)
        return score >= mc.echo_threshold

    def _classify(self, traj: Trajectory, turn: int, d: Diagnosis | None) -> tuple[str, Diagnosis | None]:
        if d is None:
            return "undiagnosed_turns", None
        if " ".join(d.corrected_action.split()) == " ".join(traj.turns[turn].action.split()):
            d.corrected_action = ""  # "do what you did" is no correction
        return ("diagnosed_turns", d) if d.is_actionable() else ("no_hint_turns", None)

    def _judge_turn_review(self, traj: Trajectory, turn: int, request, gen) -> tuple[str, Diagnosis | None]:
        if gen.error:
            self.count("reflection_errors")
            return "undiagnosed_turns", None
        d = parse_turn_review(gen.text or "", turn)
        if d is not None and d.no_hint:  # "NO HINT" is in the prompt too: it is the answer the prompt offers
            return "no_hint_turns", None
        if self.is_echo(gen.text or "", request):
            return "echo_turns", None
        return self._classify(traj, turn, d)

    def _judge_trajectory_reflection(self, traj: Trajectory, request, gen) -> list[tuple[str, Diagnosis | None]]:
        if gen.error:
            self.count("reflection_errors")
        text = "" if gen.error else gen.text or ""
        res = parse_diagnoses(text, traj.num_turns)
        self.count("diagnoses_out_of_range", res.out_of_range)
        self.count("diagnoses_unreadable", res.unreadable)
        # The format's own words are shared with the prompt's description of it; the rest must be new.
        # One line per turn repeats the format, so only the prompt counts here; each diagnosis's prose is checked
        # for repeats below.
        if self.is_echo(text, request, FORMAT_WORDS, self_repeats=False):
            return [("echo_turns", None)] * traj.num_turns
        if not res.diagnoses:
            return [("undiagnosed_turns", None)] * traj.num_turns
        out = []
        for t in range(traj.num_turns):
            d = res.diagnoses.get(t)
            # Each diagnosis's own words must not be copied from the prompt (e.g. its example line). A cause shorter
            # than an n-gram ("invalid action") beside the structured fields is a judgement even when the env's
            # answer used the same words, so only longer prose is checked.
            prose = d.prose() if d is not None else ""
            echo = len(prose.split()) >= self.method_config.echo_ngram and self.is_echo(prose, request)
            out.append(("echo_turns", None) if echo else self._classify(traj, t, d))
        return out

    def privileged_block(self, traj: Trajectory, turn: int, group: list[Trajectory]) -> str | None:
        diag = self._diagnoses.get(id(traj), {}).get(turn)
        if diag is None:
            return None
        return self.teacher_template.format(observation=(traj.turns[turn].observation or "(no reply)").strip(),
                                            diagnosis=diag.to_text(), outcome=outcome_text(traj))
