"""HERO's turn-level diagnoses: the structure, a tolerant parser for reflector output, and the compact text form.

The reflector is asked for one JSON object per agent turn (see prompts/hero_reflect_v1.txt). Models drift from
formats, so the parser also accepts tagged blocks::

    <turn 2>
    necessary: no
    valid: yes
    cause: repeated the same search
    corrected_action: click[item 3]
    </turn>

Anything that cannot be read as a diagnosis of an existing turn is dropped and counted, never guessed: a turn whose
diagnosis is missing or unreadable simply gets none (and so no HERO loss).

Only an *actionable* diagnosis becomes a hint: one that says the action was unnecessary or invalid, names a cause,
proposes a correction or holds a free-text review. "Necessary, valid, cause none, no correction" and a per-turn
"NO HINT" answer say the turn needs no hint. :func:`echo_score` tells a reflection that merely repeats its prompt
or itself (small models do: SmolLM2 fine-tuned on actions answers with the turn's own action) from one that says
something about the trajectory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_TAGGED = re.compile(r"<turn\s*(?:=\s*)?[\"']?(\d+)[\"']?\s*>(.*?)</turn\s*>", re.S | re.I)
_FIELD = re.compile(r"^\s*[-*]?\s*(necessary|necessity|valid|validity|cause|failure_cause|corrected_action|correction)"
                    r"\s*[:=]\s*(.*)$",
                    re.I | re.M)
_TRUE = {"true", "yes", "y", "1", "necessary", "valid"}
_FALSE = {"false", "no", "n", "0", "unnecessary", "invalid"}
_ALIASES = {"necessity": "necessary", "validity": "valid", "failure_cause": "cause", "correction": "corrected_action"}
# Causes that say nothing went wrong (compared lower-cased, without surrounding punctuation).
_NO_CAUSE = {"", "none", "n/a", "na", "-", "nothing", "no", "null", "nil", "no problem", "no problems", "no issue",
             "no issues", "nothing went wrong", "nothing wrong", "not applicable"}
# Whole per-turn answers that mean "this turn needs no hint" (besides answers starting with NO HINT).
_WORD = re.compile(r"\w+")


def _plain(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


_NO_HINT_ANSWERS = {_plain(a) for a in _NO_CAUSE | {"ok", "okay", "fine", "correct", "the action was correct",
                                                    "no change", "no changes", "nothing to change"}} - {""}


def no_cause(text: str) -> bool:
    """Whether a cause text says nothing went wrong ("none", "n/a", "" ...)."""
    return " ".join(text.lower().split()).strip(" .,:;!-") in _NO_CAUSE


# The diagnosis format's own vocabulary: a well-formed answer shares it with the prompt's format description.
FORMAT_WORDS = frozenset({"turn", "necessary", "necessity", "valid", "validity", "cause", "failure_cause",
                          "corrected_action", "correction", "true", "false", "yes", "no", "none", "null"})


def echo_score(text: str, prompt: str, n: int = 4, ignore: frozenset = frozenset(),
               self_repeats: bool = False) -> float:
    """Share of `text`'s word n-grams (lower-cased) that are not its own: they occur in `prompt` (or, with
    `self_repeats`, earlier in `text` itself).

    Words in `ignore` and numbers are dropped from both first (pass FORMAT_WORDS for structured answers). A
    reflection scoring near 1 repeats its prompt (instructions, transcript, outcome) instead of judging the turn.
    A text of fewer than n words scores 1 when its words occur, in order and together, in the prompt (a reflection
    that is just the turn's own action, copied), else 0. `self_repeats` also counts a stretch the text has already
    written ("The agent's action in turn 2 was:" six times over, or counting on, turn 3, turn 4 ...: with it, any number
    matches any other), the other way small models fill their budget.
    """
    def words_of(t: str) -> list[str]:
        return [w for w in _WORD.findall(t.lower()) if w not in ignore and not (ignore and w.isdigit())]

    words, pw = words_of(text), words_of(prompt)
    if not words:
        return 0.0
    if self_repeats:  # a loop that counts as it goes ("in turn 3 was: ... in turn 4 was: ...") repeats itself too
        words, pw = ([re.sub(r"\d+", "0", w) for w in ws] for ws in (words, pw))
    k = min(n, len(words))
    seen = {tuple(pw[i:i + k]) for i in range(len(pw) - k + 1)}
    if len(words) < n:
        return float(tuple(words) in seen)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    copied = 0
    for i, g in enumerate(grams):
        if self_repeats and i >= n:  # a repeat of a stretch that ends before this gram starts
            seen.add(grams[i - n])
        copied += g in seen
    return copied / len(grams)


@dataclass
class Diagnosis:
    """A reflector's judgement of one agent turn (`turn` is 0-based)."""

    turn: int
    necessary: bool | None = None
    valid: bool | None = None
    cause: str = ""
    corrected_action: str = ""
    note: str = ""  # a free-text judgement (per-turn reflection mode)
    no_hint: bool = False  # the reflector said this turn needs no hint

    def is_empty(self) -> bool:
        return (self.necessary is None and self.valid is None and not self.cause and not self.corrected_action
                and not self.note and not self.no_hint)

    def is_actionable(self) -> bool:
        """Whether it says something to act on: unnecessary, invalid, a cause, a correction or a review."""
        if self.no_hint:
            return False
        return (self.necessary is False or self.valid is False or not no_cause(self.cause)
                or bool(self.corrected_action.strip()) or bool(self.note.strip()))

    def prose(self) -> str:
        """The diagnosis's own words (cause and review), the part an echo check reads."""
        return " ".join(x.strip() for x in (self.cause if not no_cause(self.cause) else "", self.note) if x.strip())

    def to_text(self) -> str:
        """Compact form placed in the teacher's privileged block."""
        parts = []
        if self.necessary is not None:
            parts.append("the action was " + ("necessary" if self.necessary else "NOT necessary"))
        if self.valid is not None:
            parts.append("it was " + ("valid" if self.valid else "INVALID"))
        if not no_cause(self.cause):
            parts.append(f"problem: {self.cause.strip()}")
        if self.corrected_action.strip():
            parts.append(f"better action: {self.corrected_action.strip()}")
        if self.note.strip():
            parts.append(f"review: {self.note.strip()}")
        return "; ".join(parts) + "."


@dataclass
class ParseResult:
    """Diagnoses by 0-based turn, plus counts of what was dropped."""

    diagnoses: dict[int, Diagnosis] = field(default_factory=dict)
    out_of_range: int = 0  # diagnoses of turns the trajectory does not have
    duplicates: int = 0  # second and later diagnoses of one turn (the first wins)
    unreadable: int = 0  # objects/blocks that looked like a diagnosis but could not be read

    def missing(self, num_turns: int) -> int:
        return num_turns - len(self.diagnoses)


def _as_bool(v) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        w = v.strip().strip(".").lower()
        if w in _TRUE:
            return True
        if w in _FALSE:
            return False
    return None


def _as_text(v) -> str:
    if v is None:
        return ""
    return v.strip() if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _from_fields(turn_no, fields: dict) -> Diagnosis | None:
    try:
        n = int(str(turn_no).strip())
    except (TypeError, ValueError):
        return None
    fields = {_ALIASES.get(k.lower(), k.lower()): v for k, v in fields.items()}
    d = Diagnosis(turn=n - 1, necessary=_as_bool(fields.get("necessary")), valid=_as_bool(fields.get("valid")),
                  cause=_as_text(fields.get("cause")), corrected_action=_as_text(fields.get("corrected_action")))
    return None if d.is_empty() else d


def _json_candidates(text: str):
    decoder = json.JSONDecoder()
    i = 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            # Looks like the start of an object but is not one; count only if it mentions a turn.
            nxt = text.find("\n", i)
            if re.match(r"\{\s*\"turn\"", text[i:]):
                yield None
            i = i + 1 if nxt < 0 else nxt
            continue
        if isinstance(obj, dict) and "turn" in obj:
            yield obj
        i = end


def parse_diagnoses(text: str, num_turns: int) -> ParseResult:
    """Read per-turn diagnoses (JSON objects, else tagged blocks) for a trajectory of `num_turns` turns."""
    if not isinstance(text, str):
        raise TypeError(f"reflector output must be a str, got {type(text).__name__}")
    res = ParseResult()
    found: list[Diagnosis | None] = []
    for obj in _json_candidates(text):
        found.append(None if obj is None else _from_fields(obj.get("turn"), {k: v for k, v in obj.items() if k != "turn"}))
    if not any(found):
        found = []
        for m in _TAGGED.finditer(text):
            found.append(_from_fields(m.group(1), {k: v for k, v in _FIELD.findall(m.group(2))}))
    for d in found:
        if d is None:
            res.unreadable += 1
        elif not 0 <= d.turn < num_turns:
            res.out_of_range += 1
        elif d.turn in res.diagnoses:
            res.duplicates += 1
        else:
            res.diagnoses[d.turn] = d
    return res


def parse_turn_review(text: str, turn: int, max_chars: int = 400) -> Diagnosis | None:
    """A per-turn reflection's answer: a structured diagnosis if it wrote one, else its free text as a note.

    The turn is known from the request, so a turn number in the answer is ignored. Empty answers give None; an
    answer that starts with "NO HINT" (or is just "none", "ok", ...) gives a diagnosis with ``no_hint`` set.
    """
    if not isinstance(text, str):
        raise TypeError(f"reflector output must be a str, got {type(text).__name__}")
    plain = _plain(text)
    if plain.startswith("no hint") or plain in _NO_HINT_ANSWERS:
        return Diagnosis(turn=turn, no_hint=True)
    res = parse_diagnoses(text, 10**6)
    if res.diagnoses:
        d = next(iter(res.diagnoses.values()))
        d.turn = turn
        return d
    note = " ".join(text.split())
    if not note.strip(" .,:;-"):
        return None
    return Diagnosis(turn=turn, note=note[:max_chars])
