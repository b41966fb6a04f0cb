"""Reading one OpenAI-compatible chat-completions reply into a Generation, without trusting its shape.

A server (or whatever answers in its place: a proxy, a crashed worker, a hostile host) can send anything. Every
way a reply can break the schema is one :class:`MalformedReply` with a one-line reason, never another exception:
bodies nested deeper than :data:`~hero_gym.actions.MAX_JSON_DEPTH`, integers over 4,300 digits, invalid UTF-8,
``choices`` that is not a list, ``tool_calls: [null]`` or ``"abc"``, a ``function`` that is a string, and so on.
The policy treats a MalformedReply as that request's failure (retried by its rules); the other requests of the
batch are not touched.

What a reply becomes:

* ``message.content`` (a string, or a list of text parts) is the text action when there is no tool call.
* ``message.tool_calls`` becomes the structured action of :func:`hero_gym.actions.action_text_from_openai`: one
  call and no text is ``{"name": ..., "arguments": {...}}``; several calls, or a call with text, keep the OpenAI
  shape ``{"content": ..., "tool_calls": [...]}``. The env runs the first call (one per turn, as both benchmarks
  do), keeps the text as the call's content and reports the other calls as ``info["dropped_tool_calls"]``.
* ``usage.prompt_tokens`` / ``usage.completion_tokens`` fill ``Generation.prompt_tokens`` / ``completion_tokens``
  (a missing or odd ``usage`` leaves them None: it is optional in the API).
* ``choices[0].logprobs.content[*].logprob`` fills ``Generation.logprobs`` when present and well formed.
"""

from __future__ import annotations

import math
from typing import Any

from hero_gym.actions import action_text_from_openai, loads_json
from hero_gym.types import Generation


class MalformedReply(ValueError):
    """A reply that does not follow the chat-completions schema; the message says where."""


def _check_call(i: int, call: Any) -> dict:
    if not isinstance(call, dict):
        raise MalformedReply(f"tool_calls[{i}] is {type(call).__name__}, not an object")
    fn = call.get("function")
    if not isinstance(fn, dict):
        raise MalformedReply(f"tool_calls[{i}].function is {type(fn).__name__}, not an object")
    if not isinstance(fn.get("name"), str):
        raise MalformedReply(f"tool_calls[{i}].function.name is {type(fn.get('name')).__name__}, not a string")
    args = fn.get("arguments", "")
    if not isinstance(args, (str, dict)) and args is not None:
        raise MalformedReply(f"tool_calls[{i}].function.arguments is {type(args).__name__}, not a string")
    return call


def _content(message: dict) -> str | None:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts; only text parts carry an action
        if not all(isinstance(p, dict) for p in content):
            raise MalformedReply("message.content holds a part that is not an object")
        return "".join(p["text"] for p in content if isinstance(p.get("text"), str))
    raise MalformedReply(f"message.content is {type(content).__name__}, not a string")


def _count(usage: dict, key: str) -> int | None:
    v = usage.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _logprobs(choice: dict) -> list[float] | None:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("content"), list):
        return None
    out = []
    for t in lp["content"]:
        v = t.get("logprob") if isinstance(t, dict) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            return None  # one odd entry: no logprobs rather than misaligned ones
        out.append(float(v))
    return out


def parse_reply(raw: bytes | str) -> Generation:
    """The Generation of one reply body; raises :class:`MalformedReply` (only) when it breaks the schema."""
    try:
        data = loads_json(raw)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, depth, huge ints, bad UTF-8
        raise MalformedReply(f"body is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict):
        raise MalformedReply(f"body is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("no choices" if choices in (None, []) else "choices is not a list")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise MalformedReply("choices[0].message is not an object")
    message = choice["message"]
    content = _content(message)
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise MalformedReply(f"tool_calls is {type(calls).__name__}, not a list")
    calls = [_check_call(i, c) for i, c in enumerate(calls or [])]
    text = action_text_from_openai({"content": content, "tool_calls": calls})
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish = choice.get("finish_reason")
    return Generation(
        text=text,
        logprobs=_logprobs(choice),
        finish_reason=finish if isinstance(finish, str) and finish else "stop",
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
    )
