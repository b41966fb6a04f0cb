"""Parsers from an agent's message text to an action: a tool call, a message to the user, or an invalid action.

Environments take a parser (``action_parser=``): any callable ``str -> Action``. The ones here:

- :func:`parse_json_call`: the whole message is one JSON object ``{"name": ..., "arguments": {...}}``
  (``"kwargs"`` or ``"parameters"`` accepted for ``"arguments"``; arguments may be a JSON-encoded string; the
  OpenAI shapes ``{"function": {"name", "arguments"}}`` and a whole assistant message
  ``{"content": ..., "tool_calls": [...]}`` too; a Markdown code fence around it is ignored). The name
  ``respond`` with a ``content`` argument is a message to the user, as in upstream tau-bench's ReAct format.
- :func:`parse_hermes`: the ``<tool_call>{...}</tool_call>`` blocks Hermes/Qwen chat templates produce. Only the
  first block counts (upstream's ToolCallingAgent keeps ``tool_calls[:1]``); text around it is the agent's thought.

One tool call per turn, as both benchmarks run them: when a message holds several calls (several ``<tool_call>``
blocks, or an OpenAI ``tool_calls`` list), the first runs and the others are counted in
``Action.dropped_calls``; the env reports that count as ``info["dropped_tool_calls"]`` and the rollout adds it up
per episode (``Trajectory.dropped_tool_calls``, shown by ``hero-gym summary``). Text that comes with a call is
kept as the call's accompanying content (the assistant message's ``content``), not dropped.

Every JSON the parsers read goes through :func:`loads_json`: nesting deeper than :data:`MAX_JSON_DEPTH` or an
integer longer than :data:`MAX_INT_DIGITS` digits is refused with a fixed message, so the same action gives the
same observation whatever the caller's stack depth or ``sys.set_int_max_str_digits``.
- :func:`parse_react`: ``Thought: ... Action: {json}``; invalid JSON falls back to a message, as upstream.
- :func:`parse_action` (the default, ``"auto"``): ``<tool_call>`` if present, else a JSON call, else plain text is a
  message to the user.

:func:`action_text_from_openai` turns an OpenAI-style assistant message (``content`` plus ``tool_calls``) into the
text action the default parser reads.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

ActionKind = Literal["tool", "message", "invalid"]
RESPOND = "respond"
_ARG_KEYS = ("arguments", "kwargs", "parameters")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.S)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_REACT_ACTION = re.compile(r"Action:\s*", re.S)
MAX_JSON_DEPTH = 100  # tool arguments nest a few levels; this bound is far below any recursion limit
MAX_INT_DIGITS = 4300  # Python's default int/str limit, fixed here so the process setting cannot change a result
# A JSON string, or an unterminated one running to the end: every match attempt succeeds, so the scan is linear.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass(frozen=True)
class Action:
    """A parsed agent action.

    kind: "tool" (call `name` with `arguments`), "message" (say `content` to the user) or "invalid" (`error` says
        why; the env answers with an error observation and changes nothing).
    content: for a message, the text for the user; for a tool call, any text the agent wrote around the call.
    """

    kind: ActionKind
    name: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    content: str = ""
    error: str | None = None
    dropped_calls: int = 0  # further tool calls in the same message, not run (one call per turn)

    @classmethod
    def message(cls, content: str) -> "Action":
        return cls(kind="message", content=content)

    @classmethod
    def invalid(cls, error: str, content: str = "") -> "Action":
        return cls(kind="invalid", error=error, content=content)


ActionParser = Callable[[str], Action]


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets of `text` (outside JSON strings) nest deeper than `limit`. Linear in the length."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    import numpy as np  # only reached for texts with many brackets

    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int64)
    return bool(steps.size) and int(np.cumsum(steps).max()) > limit


def _bounded_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_INT_DIGITS:
        raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(digits)


def loads_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses, with a fixed ValueError message, nesting deeper than `max_depth` and integers
    longer than :data:`MAX_INT_DIGITS` digits. Syntax errors raise ``json.JSONDecodeError`` (a ValueError) as
    usual; nothing else escapes (no RecursionError)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if json_too_deep(text, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except RecursionError:  # only if the caller's own stack is already nearly exhausted
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None


def _json_error(e: ValueError) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    return str(e)


def _decode_openai_message(obj: dict) -> Action | None:
    """An OpenAI assistant message ``{"content": ..., "tool_calls": [...]}`` sent as the action text."""
    calls = obj.get("tool_calls")
    content = obj.get("content")
    content = content if isinstance(content, str) else ""
    if calls is None or calls == []:
        return Action.message(content) if content else None
    if not isinstance(calls, list):
        return Action.invalid(f'"tool_calls" must be a list of calls, got {type(calls).__name__}', content)
    first = calls[0]
    decoded = _decode_call(first, content) if isinstance(first, dict) else None
    if decoded is None:
        return Action.invalid('each entry of "tool_calls" must be {"function": {"name": ..., "arguments": ...}}',
                              content)
    return dataclasses.replace(decoded, dropped_calls=len(calls) - 1)


def _decode_call(obj: Any, content: str = "") -> Action | None:
    """A tool-call Action from a decoded JSON value, an invalid Action if it is a broken call, None if not a call."""
    if not isinstance(obj, dict):
        return None
    if "tool_calls" in obj and "name" not in obj and "function" not in obj:
        return _decode_openai_message(obj)
    if "function" in obj and isinstance(obj["function"], dict) and "name" not in obj:
        obj = obj["function"]  # OpenAI {"type": "function", "function": {...}}
    arg_keys = [k for k in _ARG_KEYS if k in obj]
    if "name" not in obj:
        if arg_keys:
            return Action.invalid("tool call has arguments but no \"name\"", content)
        return None
    name = obj["name"]
    if not isinstance(name, str) or not name.strip():
        return Action.invalid(f"tool call \"name\" must be a non-empty string, got {json.dumps(name)}", content)
    if len(arg_keys) > 1:
        return Action.invalid(f"tool call gives arguments twice ({' and '.join(arg_keys)})", content)
    args = obj[arg_keys[0]] if arg_keys else {}
    if isinstance(args, str):
        try:
            args = loads_json(args) if args.strip() else {}
        except ValueError as e:
            return Action.invalid(f"tool call arguments are a string that is not valid JSON ({_json_error(e)})",
                                  content)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return Action.invalid(f"tool call arguments must be a JSON object, got {type(args).__name__}", content)
    if name == RESPOND:
        text = args.get("content")
        if not isinstance(text, str):
            return Action.invalid('"respond" needs a string "content" argument', content)
        return Action.message(text)
    return Action(kind="tool", name=name, arguments=args, content=content)


def _strip_fence(text: str) -> str:
    s = text.strip()
    m = _FENCE.match(s)
    return m.group(1).strip() if m else s


def parse_json_call(text: str) -> Action:
    """The whole message as a JSON tool call; anything that is not one is a message to the user.

    Text that starts like a JSON object and mentions "name" but does not parse is invalid (a broken call), not a
    message: sending half a JSON object to the customer is never what the agent meant.
    """
    s = _strip_fence(text)
    if s.startswith("{"):
        try:
            obj = loads_json(s)
        except ValueError as e:
            if '"name"' in s or '"tool_calls"' in s:
                return Action.invalid(f"malformed JSON tool call ({_json_error(e)})")
            return Action.message(text)
        decoded = _decode_call(obj)
        if decoded is not None:
            return decoded
    return Action.message(text)


def parse_hermes(text: str) -> Action:
    """The first ``<tool_call>...</tool_call>`` block (closing tag optional); without one, a message."""
    m = _TOOL_CALL.search(text)
    if m is None:
        return Action.message(text)
    thought = (text[: m.start()]).strip()
    body = _strip_fence(m.group(1))
    try:
        obj = loads_json(body)
    except ValueError as e:
        return Action.invalid(f"malformed JSON inside <tool_call> ({_json_error(e)})", thought)
    decoded = _decode_call(obj, thought)
    if decoded is None:
        return Action.invalid('<tool_call> must hold a JSON object with a "name"', thought)
    extra = text.count("<tool_call>", m.end()) if m.group(0).endswith("</tool_call>") else 0
    return dataclasses.replace(decoded, dropped_calls=decoded.dropped_calls + extra) if extra else decoded


def parse_react(text: str) -> Action:
    """``Thought: ... Action: {"name": ..., "arguments": ...}``. As upstream's ReAct agent, a missing or broken
    action JSON makes the whole text a message to the user."""
    parts = _REACT_ACTION.split(text, maxsplit=1)
    if len(parts) < 2:
        return Action.message(text)
    thought, body = parts[0].strip(), _strip_fence(parts[1])
    try:
        obj = loads_json(body)
    except ValueError:
        return Action.message(text)
    decoded = _decode_call(obj, thought)
    return decoded if decoded is not None else Action.message(text)


def parse_action(text: str) -> Action:
    """Default parser: ``<tool_call>`` blocks, else a JSON call, else a message to the user."""
    if "<tool_call>" in text:
        return parse_hermes(text)
    return parse_json_call(text)


PARSERS: dict[str, ActionParser] = {
    "auto": parse_action,
    "json": parse_json_call,
    "hermes": parse_hermes,
    "react": parse_react,
}


def get_parser(parser: str | ActionParser | None) -> ActionParser:
    """A parser by name (see :data:`PARSERS`) or a callable returned as is; None gives the default."""
    if parser is None:
        return parse_action
    if isinstance(parser, str):
        try:
            return PARSERS[parser]
        except KeyError:
            raise ValueError(f"unknown action parser {parser!r}; known: {sorted(PARSERS)} or a callable") from None
    if not callable(parser):
        raise TypeError(f"action_parser must be a name or a callable str -> Action, got {type(parser).__name__}")
    return parser


def action_text_from_openai(message: dict) -> str:
    """The text action for an OpenAI-style assistant message ``{"content": ..., "tool_calls": [...]}``.

    One tool call and no text: the compact ``{"name": ..., "arguments": {...}}``. Several calls, or a call with
    text: the message's own shape ``{"content": ..., "tool_calls": [...]}``, which the default parser reads as the
    first call with the text as its content, the other calls counted as dropped (one call per turn, as upstream).
    No call: the content.
    """
    if not isinstance(message, dict):
        raise TypeError(f"expected an assistant message dict, got {type(message).__name__}")
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    content = content if isinstance(content, str) else ""
    calls = message.get("tool_calls") or []
    if not calls:
        return content
    if not isinstance(calls, list) or len(calls) > 1 or content.strip():
        return json.dumps({"content": content, "tool_calls": calls}, default=str)
    call = calls[0]
    fn = call.get("function", call) if isinstance(call, dict) else {}
    fn = fn if isinstance(fn, dict) else {}
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = loads_json(args) if args.strip() else {}
        except ValueError:
            pass  # keep the broken string: the parser reports it as an invalid call
    return json.dumps({"name": fn.get("name"), "arguments": args}, default=str)


def format_tool_call(name: str, arguments: dict) -> str:
    """The structured text action for a call (what baselines emit): ``{"name": ..., "arguments": {...}}``."""
    return json.dumps({"name": name, "arguments": arguments})
