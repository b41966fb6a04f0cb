"""Token-exact conversation bookkeeping: a multi-turn conversation kept as token ids, turn by turn.

Re-rendering the whole conversation each turn and re-tokenizing it does not give back the ids the model generated
(BPE merges differ across a decode/encode round trip, templates drop or rewrite earlier turns), which makes the
trainer score tokens the sampler never produced. :class:`ConversationTokens` avoids that:

* the prompt is rendered once (system + first observation, with the generation prompt);
* the assistant's generated ids are appended verbatim;
* the environment's answer is appended as the *delta* of the rendered template: render the conversation up to and
  including the assistant's message, render it again with the new messages (and the next generation prompt), and
  tokenize only the text the second rendering adds. If a template breaks that prefix property (some templates
  rewrite earlier turns), the delta is taken against a small stand-in context instead, with a warning and a count
  in :data:`FALLBACK_COUNT` / ``ConversationTokens.fallbacks``.

Only text the model did not write is ever tokenized. When generation stopped on an end-of-turn token, the rest of
the template's end-of-turn string (e.g. the newline after ``<|im_end|>``) goes into the observation ids, and when it
stopped without one (length limit) the whole end-of-turn string does: both belong to the environment side.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

FALLBACK_COUNT = 0  # process-wide count of deltas that needed the fallback (templates that break the prefix property)
_EOT_MARK = "\u2063HEROGYM_EOT_MARK\u2063"


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used for token-exact bookkeeping."""


def supports_tools(tokenizer) -> bool:
    """True when the tokenizer's chat template renders the `tools` argument itself."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(template.values())
    return "tools" in template


def _tool_call_text(call: dict) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    return json.dumps({"name": fn.get("name"), "arguments": args})


def prepare_messages(tokenizer, messages: list[dict], tools: list[dict] | None) -> tuple[list[dict], list[dict] | None]:
    """Adapt messages to a template without tool support (e.g. SmolLM2's plain ChatML): the tool schemas go into
    the system message, assistant tool calls become JSON text and tool results become user turns. Templates that
    support tools get the messages unchanged."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError("messages must be a list of dicts with a 'role' key (OpenAI chat format)")
    if supports_tools(tokenizer):
        return messages, tools
    if not tools and not any(m.get("tool_calls") or m["role"] == "tool" or m.get("content") is None for m in messages):
        return messages, tools
    out = []
    for m in messages:
        m = dict(m)
        if m.get("content") is None:  # plain templates concatenate content as a string
            m["content"] = ""
        if m["role"] == "assistant" and m.get("tool_calls"):
            parts = [m.get("content") or ""] + [_tool_call_text(c) for c in m.pop("tool_calls")]
            m["content"] = "\n".join(p for p in parts if p)
        elif m["role"] == "tool":
            m = {"role": "user", "content": f"Tool result:\n{m.get('content', '')}"}
        out.append(m)
    if tools:
        schema = "\n".join(json.dumps(t) for t in tools)
        note = (
            "You can call these functions:\n" + schema + "\nTo call one, reply with only a JSON object "
            '{"name": <function name>, "arguments": <object>}.'
        )
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{note}"}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out, None


def render(tokenizer, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False) -> str:
    """The chat template's text for `messages` (tool-less templates get the tools folded in, see prepare_messages)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(f"{type(tokenizer).__name__} has no chat template; token-exact rollouts need one")
    msgs, tls = prepare_messages(tokenizer, messages, tools)
    return _apply(tokenizer, [msgs], tls, add_generation_prompt)[0]


def _render_both(tokenizer, first: list[dict], second: list[dict], tools) -> tuple[str, str]:
    """``render(first)`` and ``render(second)`` (no generation prompt) in one call of the template."""
    (a, tls), (b, _) = prepare_messages(tokenizer, first, tools), prepare_messages(tokenizer, second, tools)
    head, full = _apply(tokenizer, [a, b], tls, False)
    return head, full


def _apply(tokenizer, conversations: list[list[dict]], tools, add_generation_prompt: bool) -> list[str]:
    fast = _fast_renderer(tokenizer)
    if fast is not None and tools is None:
        out = fast.render(conversations, add_generation_prompt)
        if out is not None:
            return out
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        kwargs["tools"] = tools
    return list(tokenizer.apply_chat_template(conversations, **kwargs))


class _FastRenderer:
    """The tokenizer's compiled chat template called directly: ``apply_chat_template`` spends about two thirds of a
    60 us call on per-call preparation (normalizing and copying every message, building the special-token map),
    and a rollout renders two or three times per episode-turn (issue 9: the harness's own time).

    Only plain conversations take this path: every message a dict of string role/content (and a name), without
    tools, which is what the preparation leaves unchanged. The first `VERIFY` renders of each tokenizer are
    checked against ``apply_chat_template``; one mismatch (or a transformers without the compiled-template helper)
    turns the fast path off for that tokenizer for good.
    """

    VERIFY = 8
    PLAIN_KEYS = frozenset(("role", "content", "name"))

    def __init__(self, tokenizer, template: str, compiled):
        self.tokenizer, self.template, self.compiled = tokenizer, template, compiled
        # Jinja's render() copies the template's globals out of a ChainMap on every call (~10 us, a third of a short
        # render); a flat copy made once and handed over as a shared context gives the template the same names.
        self.base = {**compiled.globals, **tokenizer.special_tokens_map, "tools": None, "documents": None}
        self.to_verify = self.VERIFY
        self.enabled = True

    def _render(self, conv: list[dict], add_generation_prompt: bool) -> str:
        ctx = self.compiled.new_context({**self.base, "messages": conv, "add_generation_prompt": add_generation_prompt},
                                        shared=True)
        return self.compiled.environment.concat(self.compiled.root_render_func(ctx))

    def render(self, conversations: list[list[dict]], add_generation_prompt: bool) -> list[str] | None:
        if not self.enabled:
            return None
        for conv in conversations:
            for m in conv:
                if type(m) is not dict or not m.keys() <= self.PLAIN_KEYS or type(m.get("content")) is not str \
                        or type(m.get("role")) is not str or type(m.get("name", "")) is not str:
                    return None
        try:
            out = [self._render(conv, add_generation_prompt) for conv in conversations]
        except Exception:  # e.g. the template's raise_exception: the slow path raises it with transformers' message
            return None
        if self.to_verify > 0:
            self.to_verify -= 1
            slow = list(self.tokenizer.apply_chat_template(conversations, tokenize=False,
                                                           add_generation_prompt=add_generation_prompt))
            if slow != out:
                self.enabled = False
                return slow
        return out


def _fast_renderer(tokenizer) -> _FastRenderer | None:
    fast = getattr(tokenizer, "_hero_gym_fast_render", None)
    template = getattr(tokenizer, "chat_template", None)
    if fast is None or (fast and fast.template is not template):  # a template set after the first render
        fast = False
        if isinstance(template, str):
            try:
                from transformers.utils.chat_template_utils import _compile_jinja_template

                fast = _FastRenderer(tokenizer, template, _compile_jinja_template(template))
            except Exception:  # another transformers version or a template its sandbox rejects: the slow path
                fast = False
        try:
            tokenizer._hero_gym_fast_render = fast
        except AttributeError:
            return None
    return fast or None


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of template text (special tokens in the text are parsed; no BOS/EOS added)."""
    seg = _segment_encoder(tokenizer)
    if seg is not None:
        return seg.encode(text)
    return list(tokenizer.encode(text, add_special_tokens=False))


class _SegmentEncoder:
    """``encode`` that caches the text between added tokens (``<|im_start|>``...), because every prompt repeats the
    same long system message and a rollout tokenizes thousands of prompts.

    Tokenizers split text at added tokens before normalizing and pre-tokenizing, so the ids of a text are the ids of
    its pieces laid end to end; that holds only for added tokens that strip no whitespace and match un-normalized
    text (checked here), and for pre-tokenizers that treat every piece alike, which is why the first `VERIFY` texts
    of each tokenizer are also encoded whole: one mismatch turns the cache off for that tokenizer for good.
    """

    VERIFY = 8
    MAX_CHARS = 16_000_000  # cached text kept per tokenizer before the cache starts over

    def __init__(self, tokenizer, split_re):
        self.tokenizer, self.split_re = tokenizer, split_re
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.ids_of = {t.content: int(i) for i, t in tokenizer.added_tokens_decoder.items()}
        self.cache: dict[str, list[int]] = {}
        self.chars = 0
        self.to_verify = self.VERIFY
        self.enabled = True

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        if self.backend is not None:
            # encode_batch_fast skips the character offsets nobody here reads: half the cost of a short text
            batch = getattr(self.backend, "encode_batch_fast", None) or self.backend.encode_batch
            return [e.ids for e in batch(texts, add_special_tokens=False)]
        return [list(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def encode(self, text: str) -> list[int]:
        if not self.enabled:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        parts = self.split_re.split(text)  # odd positions are the added tokens themselves
        missing = [p for p in dict.fromkeys(parts[0::2]) if p and p not in self.cache]
        if missing:
            if self.chars > self.MAX_CHARS:
                self.cache, self.chars = {}, 0
            for p, ids in zip(missing, self._encode_many(missing)):
                self.cache[p] = ids
                self.chars += len(p)
        out: list[int] = []
        for i, p in enumerate(parts):
            if i % 2:
                out.append(self.ids_of[p])
            elif p:
                out += self.cache[p]
        if self.to_verify > 0:
            self.to_verify -= 1
            whole = list(self.tokenizer.encode(text, add_special_tokens=False))
            if whole != out:
                self.enabled, self.cache = False, {}
                return whole
        return out


def clear_encode_cache(tokenizer) -> None:
    """Forget the tokenizer's cached pieces (benchmarks use it to time a cold cache)."""
    seg = getattr(tokenizer, "_hero_gym_segments", None)
    if seg:
        seg.cache, seg.chars = {}, 0


def _segment_encoder(tokenizer) -> _SegmentEncoder | None:
    """The tokenizer's segment cache (built on first use), or None when its added tokens do not allow one."""
    seg = getattr(tokenizer, "_hero_gym_segments", None)
    if seg is None:
        import re

        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        tokens = [t for t in added.values() if getattr(t, "content", None)]
        plain = all(not (t.lstrip or t.rstrip or t.single_word or t.normalized) for t in tokens)
        seg = False
        if tokens and plain:
            pattern = "|".join(re.escape(t.content) for t in sorted(tokens, key=lambda t: -len(t.content)))
            seg = _SegmentEncoder(tokenizer, re.compile(f"({pattern})"))
        try:
            tokenizer._hero_gym_segments = seg
        except AttributeError:
            return None
    return seg or None


def prompt_ids(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Ids of the rendered conversation ending with the assistant's generation prompt."""
    return encode(tokenizer, render(tokenizer, messages, tools, add_generation_prompt=True))


def end_of_turn_text(tokenizer) -> str:
    """What the template writes after an assistant message's content (``"<|im_end|>\\n"`` for ChatML)."""
    cached = getattr(tokenizer, "_hero_gym_eot", None)
    if cached is not None:
        return cached
    text = render(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _EOT_MARK}])
    if _EOT_MARK not in text:
        raise ChatTemplateError("the chat template does not render assistant message content")
    eot = text.split(_EOT_MARK, 1)[1]
    try:
        tokenizer._hero_gym_eot = eot
    except AttributeError:
        pass
    return eot


def stop_token_ids(tokenizer, model=None) -> set[int]:
    """Token ids that end an assistant turn: EOS, ``<|im_end|>``/``<|eot_id|>`` when in the vocabulary, and the
    model's generation-config EOS ids."""
    cached = getattr(tokenizer, "_hero_gym_stop_ids", None)
    if cached is None:
        cached = _tokenizer_stop_ids(tokenizer)
        try:
            tokenizer._hero_gym_stop_ids = cached  # get_vocab() copies the whole vocabulary: ~0.4 ms a call
        except AttributeError:
            pass
    ids = set(cached)
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if eos is not None:
        ids.update(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))
    return ids


def _tokenizer_stop_ids(tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        if tok in vocab:
            ids.add(int(vocab[tok]))
    return frozenset(ids)


def _stop_text(tokenizer, token_id: int) -> str:
    """The text of a stop token, cached per tokenizer (a `decode` call costs ~0.05 ms, and every turn ends in one)."""
    cache = getattr(tokenizer, "_hero_gym_stop_text", None)
    if cache is None:
        cache = {}
        try:
            tokenizer._hero_gym_stop_text = cache
        except AttributeError:
            pass
    text = cache.get(token_id)
    if text is None:
        text = cache[token_id] = tokenizer.decode([token_id], skip_special_tokens=False)
    return text


class ConversationTokens:
    """One conversation as token ids: ``prompt_token_ids`` then, per turn, action ids (verbatim) and obs ids.

    Usage: ``conv = ConversationTokens(tok, messages, tools)``; generate from ``conv.ids``; after the env answers,
    ``obs = conv.add_turn(action_ids, env_messages, done=...)``. `env_messages` is the env's full message list
    after the step; the agent's message is the first assistant message after those seen so far (if the env did not
    record one, the decoded action is used as its content, which only affects the rendered prefix).
    """

    def __init__(self, tokenizer, messages: list[dict], tools: list[dict] | None = None, model=None):
        self.tokenizer = tokenizer
        self.tools = tools
        self.messages = list(messages)
        self.prompt_token_ids = prompt_ids(tokenizer, self.messages, tools)
        self.ids = list(self.prompt_token_ids)
        self.eot = end_of_turn_text(tokenizer)
        self._stop_ids = stop_token_ids(tokenizer, model)
        self.fallbacks = 0

    def boundary_text(self, action_ids: list[int]) -> str:
        """The part of the end-of-turn string the model did not generate itself."""
        if action_ids and action_ids[-1] in self._stop_ids:
            last = _stop_text(self.tokenizer, action_ids[-1])
            if last and self.eot.startswith(last):
                return self.eot[len(last):]
        return self.eot

    def _delta(self, prefix: list[dict], new: list[dict], add_generation_prompt: bool) -> str:
        global FALLBACK_COUNT
        if add_generation_prompt:
            head = render(self.tokenizer, prefix, self.tools)
            full = render(self.tokenizer, prefix + new, self.tools, add_generation_prompt=True)
        else:  # one template call for both saves its fixed cost (~0.1 ms) on every episode's last turn
            head, full = _render_both(self.tokenizer, prefix, prefix + new, self.tools)
        if full.startswith(head):
            return full[len(head):]
        self.fallbacks += 1
        FALLBACK_COUNT += 1
        warnings.warn(
            "chat template broke the prefix property (rendering more messages changed earlier text); "
            "taking the new messages' tokens against a stand-in context", RuntimeWarning, stacklevel=3)
        stand_in = [m for m in prefix[:1] if m.get("role") == "system"]
        stand_in += [{"role": "user", "content": "."}, {"role": "assistant", "content": "."}]
        head = render(self.tokenizer, stand_in, self.tools)
        full = render(self.tokenizer, stand_in + new, self.tools, add_generation_prompt=add_generation_prompt)
        if not full.startswith(head):
            raise ChatTemplateError("chat template renders earlier messages differently when more follow; "
                                    "token-exact bookkeeping is impossible with it")
        return full[len(head):]

    def add_turn(self, action_ids: list[int], messages: list[dict], *, done: bool = False) -> list[int]:
        """Record one turn; return the observation ids (boundary + env messages [+ next generation prompt])."""
        messages = list(messages)
        seen = len(self.messages)
        if messages[:seen] != self.messages:
            raise ValueError("the env's messages do not extend the conversation seen so far (history was rewritten)")
        idx = next((i for i in range(seen, len(messages)) if messages[i].get("role") == "assistant"), None)
        if idx is None:
            own = {"role": "assistant", "content": self.tokenizer.decode(action_ids, skip_special_tokens=True)}
            prefix, new = self.messages + [own], messages[seen:]
        else:
            prefix, new = messages[: idx + 1], messages[idx + 1:]
        text = self.boundary_text(action_ids)
        if new or not done:
            text += self._delta(prefix, new, add_generation_prompt=not done)
        obs = encode(self.tokenizer, text) if text else []
        self.ids += list(action_ids) + obs
        self.messages = messages
        return obs
