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


@dataclass
class Diagnosis:
    """A reflector's judgement of one agent turn (`turn` is 0-based)."""

    turn: int
    necessary: bool | None = None
    valid: bool | None = None
    cause: str = ""
    corrected_action: str = ""
    note: str = ""  # a free-text judgement (per-turn reflection mode)

    def is_empty(self) -> bool:
        return (self.necessary is None and self.valid is None and not self.cause and not self.corrected_action
                and not self.note)

    def to_text(self) -> str:
        """Compact form placed in the teacher's privileged block."""
        parts = []
        if self.necessary is not None:
            parts.append("the action was " + ("necessary" if self.necessary else "NOT necessary"))
        if self.valid is not None:
            parts.append("it was " + ("valid" if self.valid else "INVALID"))
        if self.cause and self.cause.strip().lower() not in ("none", "n/a", "-"):
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

    The turn is known from the request, so a turn number in the answer is ignored. Empty answers give None.
    """
    if not isinstance(text, str):
        raise TypeError(f"reflector output must be a str, got {type(text).__name__}")
    res = parse_diagnoses(text, 10**6)
    if res.diagnoses:
        d = next(iter(res.diagnoses.values()))
        d.turn = turn
        return d
    note = " ".join(text.split())
    if not note.strip(" .,:;-"):
        return None
    return Diagnosis(turn=turn, note=note[:max_chars])
