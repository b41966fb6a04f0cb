"""A Policy for any OpenAI-compatible ``/v1/chat/completions`` server (OpenAI, vLLM serve, SGLang, llama.cpp, ...),
using only the standard library.

* The API key is read from the environment variable named by `api_key_env` at each request (no key: no
  Authorization header, fine for local servers). It is never stored on the object, logged, or put in an error.
* 429, 408, 5xx, connection errors and timeouts are retried with exponential backoff (``backoff * 2**attempt``
  seconds, capped by `max_backoff`; a numeric Retry-After header wins when given). When retries run out, or on an
  error that retrying cannot fix (other 4xx, a malformed reply), the Generation comes back with ``error`` set, so
  the rollout records that episode as failed and the run goes on.
* A reply with ``tool_calls`` becomes the structured text action ``{"name": ..., "arguments": {...}}`` (the first
  call only, as tau-bench's agents execute one call per turn; any text content is dropped).
* With ``logprobs=True`` the server is asked for log-probabilities, returned in ``Generation.logprobs``; token ids
  are not part of the API, so ``token_ids`` stays None.
* A batch is sent concurrently with a thread pool of `concurrency` workers.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def tool_call_action(call: dict) -> str:
    """An OpenAI tool call as hero-gym's structured text action ``{"name": ..., "arguments": {...}}``."""
    fn = call.get("function") or {}
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass  # keep the raw string: the env reports the bad arguments as an invalid action
    return json.dumps({"name": fn.get("name"), "arguments": args})


def _wire_messages(messages: list[dict]) -> list[dict]:
    """OpenAI wants tool-call arguments as JSON strings; envs may hold them as dicts."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function") or {})
                if not isinstance(fn.get("arguments", ""), str):
                    fn["arguments"] = json.dumps(fn["arguments"])
                calls.append({**c, "function": fn, "type": c.get("type", "function")})
            m = {**m, "tool_calls": calls}
        out.append(m)
    return out


class OpenAIHTTPPolicy:
    """Policy over an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: e.g. "http://127.0.0.1:8000/v1" (``/chat/completions`` is appended).
        model: the model name the server expects.
        api_key_env: name of the environment variable holding the key.
        timeout: seconds per HTTP attempt.
        max_retries: retries after the first attempt for retryable failures.
        backoff: base delay in seconds; attempt k waits ``backoff * 2**k`` (capped by max_backoff).
        concurrency: parallel requests per batch.
        logprobs: ask the server for log-probabilities of the sampled tokens.
        extra_body: extra JSON fields sent with every request (e.g. {"top_k": 20} for vLLM).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 8,
                 logprobs: bool = False, extra_body: dict | None = None, name: str | None = None):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not timeout or timeout <= 0 or backoff < 0 or concurrency < 1:
            raise ValueError("timeout must be > 0, backoff >= 0 and concurrency >= 1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = float(timeout), max_retries
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.concurrency = int(concurrency)
        self.logprobs = bool(logprobs)
        self.extra_body = dict(extra_body or {})
        self.name = name or f"http:{model}"

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """One Generation per request, in order; failures come back as Generations with ``error`` set."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _body(self, req: ChatRequest) -> dict:
        body = {
            "model": self.model,
            "messages": _wire_messages(req.messages),
            "max_tokens": req.max_new_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.tools:
            body["tools"] = req.tools
        if req.seed is not None:
            body["seed"] = int(req.seed) % 2**31  # some servers reject 64-bit seeds
        if req.stop:
            body["stop"] = list(req.stop)
        if self.logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        return body

    def _post(self, payload: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = "Bearer " + key
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace") if e.fp is not None else ""
            message = f"HTTP {e.code} from {self.url}: {detail}".strip()
            if e.code in RETRY_STATUS or e.code >= 500:
                raise _Retryable(message, _retry_after(e.headers.get("Retry-After") if e.headers else None))
            raise RuntimeError(message) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise _Retryable(f"{type(e).__name__} talking to {self.url}: {reason}") from None

    def _one(self, req: ChatRequest) -> Generation:
        try:
            payload = json.dumps(self._body(req)).encode("utf-8")
        except (TypeError, ValueError) as e:
            return Generation(text="", error=f"request is not JSON-serialisable: {e}", finish_reason="error")
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                raw = self._post(payload)
            except _Retryable as e:
                last = str(e)
                if attempt < self.max_retries:
                    delay = min(self.backoff * 2**attempt, self.max_backoff)
                    if e.retry_after is not None:
                        delay = min(e.retry_after, self.max_backoff)
                    time.sleep(delay)
                continue
            except Exception as e:
                return Generation(text="", error=str(e), finish_reason="error")
            return self._parse(raw)
        return Generation(text="", error=f"gave up after {self.max_retries + 1} attempts: {last}",
                          finish_reason="error")

    def _parse(self, raw: bytes) -> Generation:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as e:
            snippet = raw[:200].decode("utf-8", "replace")
            return Generation(text="", error=f"malformed reply from {self.url} ({type(e).__name__}): {snippet!r}",
                              finish_reason="error")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if calls:
            text = tool_call_action(calls[0])
        else:
            content = message.get("content") if isinstance(message, dict) else None
            text = content if isinstance(content, str) else ""
        logprobs = None
        lp = choice.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            try:
                logprobs = [float(t["logprob"]) for t in lp["content"]]
            except (KeyError, TypeError, ValueError):
                logprobs = None
        return Generation(text=text, logprobs=logprobs, finish_reason=str(choice.get("finish_reason") or "stop"))


def _retry_after(value) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
