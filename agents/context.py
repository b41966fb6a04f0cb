"""Per-turn token contexts: the student's (shared by every method) and the teacher's (student's + a privileged block).

The student's context for turn t is cut from the trajectory's own token ids and nothing else, so no privileged
text can reach it. A teacher context is the same ids with one extra user message (the method's privileged block)
inserted just before the assistant header that opens turn t; the student's action tokens then follow unchanged,
so the teacher scores exactly the tokens the student sampled.

Memory bound (the truncation rule): a context longer than ``max_context_tokens`` keeps the trajectory's prompt
(system message, tools, task) and the most recent whole turns that fit; older turns are dropped from the middle.
If the prompt and the current turn alone are still too long, the context is cut from the left. The student and
teacher contexts of one turn are truncated from the same history, so they differ only by the privileged block
(itself capped at ``max_privileged_tokens``, cut from its start so the newest text is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hero_gym.types import Trajectory

_PROBE = "PROBE-hero-gym"


@dataclass
class TurnItem:
    """One scored turn: the student context, the action tokens, and optionally the teacher context."""

    traj_index: int
    turn_index: int
    student_ids: list[int]
    action_ids: list[int]
    teacher_ids: list[int] | None = None
    weight: float = 1.0  # per-token scale (GRPO puts the advantage here)
    extra: dict = field(default_factory=dict)


def student_context(traj: Trajectory, turn: int, max_context_tokens: int | None = None) -> list[int]:
    """Token ids the student saw before generating turn `turn`'s action, truncated by the module's rule."""
    if not 0 <= turn < len(traj.turns):
        raise IndexError(f"turn {turn} out of range: trajectory has {len(traj.turns)} turns")
    history = [list(t.action_token_ids) + list(t.obs_token_ids) for t in traj.turns[:turn]]
    prompt = list(traj.prompt_token_ids)
    if max_context_tokens is None:
        return prompt + [i for h in history for i in h]
    # At least one context token must stay so the first action token has a position to be predicted from.
    budget = max(1, max_context_tokens - len(traj.turns[turn].action_token_ids))
    kept: list[list[int]] = []
    used = len(prompt)
    # Newest turns first: the turns just before the action matter most for it.
    for h in reversed(history):
        if used + len(h) > budget:
            break
        kept.append(h)
        used += len(h)
    if history and not kept:
        # The last observation ends with the assistant header that opens this turn: keep it, cut from the left.
        kept = [history[-1]]
    ids = prompt + [i for h in reversed(kept) for i in h]
    return ids[-budget:]


class TeacherContextBuilder:
    """Inserts a privileged block (a user message) into a student's turn context, using the tokenizer's chat template.

    Tokenizers without a chat template get the block as plain text appended to the context.
    """

    def __init__(self, tokenizer, max_privileged_tokens: int = 2048):
        self.tokenizer = tokenizer
        self.max_privileged_tokens = int(max_privileged_tokens)
        self.header_ids, self._user_prefix, self._user_suffix = self._template_parts()
        self.fallback_count = 0  # contexts that did not end with the assistant header (block appended instead)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _render(self, messages, gen: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)

    def _template_parts(self) -> tuple[list[int], str, str]:
        if not getattr(self.tokenizer, "chat_template", None):
            return [], "\n", "\n"
        one = [{"role": "user", "content": "hello"}]
        base, with_gen = self._render(one, False), self._render(one, True)
        header = with_gen[len(base):] if with_gen.startswith(base) else ""
        two = self._render(one + [{"role": "user", "content": _PROBE}], False)
        if not two.startswith(base) or _PROBE not in two[len(base):]:
            raise ValueError("cannot locate a user message in this tokenizer's chat template")
        prefix, suffix = two[len(base):].split(_PROBE, 1)
        return self._encode(header), prefix, suffix

    def block_ids(self, text: str) -> list[int]:
        """Token ids of one user message holding `text` (capped at max_privileged_tokens, newest text kept)."""
        body = self._encode(text)
        if len(body) > self.max_privileged_tokens:
            body = body[-self.max_privileged_tokens:]
        return self._encode(self._user_prefix) + body + self._encode(self._user_suffix)

    def build(self, student_ids: list[int], privileged_text: str) -> list[int]:
        """Teacher context: student's context with the privileged user message before the assistant header."""
        block = self.block_ids(privileged_text)
        h = len(self.header_ids)
        if h and len(student_ids) >= h and student_ids[-h:] == self.header_ids:
            return student_ids[:-h] + block + self.header_ids
        self.fallback_count += 1
        return student_ids + block + self.header_ids


def render_trajectory(traj: Trajectory, max_chars_per_message: int = 2000) -> str:
    """A plain-text transcript (task, then each agent action and the environment's answer), for reflectors and demos."""

    def cut(s: str) -> str:
        s = s or ""
        half = max_chars_per_message // 2
        return s if len(s) <= max_chars_per_message else s[:half] + " [...] " + s[-half:]

    lines = [f"TASK / FIRST OBSERVATION:\n{cut(traj.initial_observation)}"]
    for i, t in enumerate(traj.turns, start=1):
        lines.append(f"[Turn {i}] AGENT ACTION:\n{cut(t.action)}")
        lines.append(f"[Turn {i}] ENVIRONMENT ANSWER:\n{cut(t.observation)}")
    return "\n\n".join(lines)


def outcome_text(traj: Trajectory) -> str:
    """The final outcome in one line (success, reward, why it ended)."""
    verdict = "SUCCESS" if traj.success else "FAILURE"
    return f"{verdict} (reward {traj.reward:.2f}, ended by: {traj.termination_reason or 'unknown'}, {traj.num_turns} turns)"
