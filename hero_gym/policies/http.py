"""A Policy for any OpenAI-compatible ``/v1/chat/completions`` server (OpenAI, vLLM serve, SGLang, llama.cpp, ...),
over httpx.

* The API key is read from the environment variable named by `api_key_env` at each request (no key: no
  Authorization header, fine for local servers). It is never stored on the object, and it (with any
  ``Authorization`` value or a password in the URL) is redacted from every error text the policy produces, so
  a server that echoes the request headers cannot put it into the records.
* Redirects are followed only within the origin (scheme, host, port) of `base_url`; a redirect elsewhere is an
  error, so neither the key nor the conversation leaves for a host nobody configured.
* `timeout` bounds one attempt as a whole, from connecting to the last byte of the body: a server that trickles
  its reply cannot hold a request longer. A body over `max_reply_bytes` is refused.
* 429, 408, 409, 5xx, connection errors, timeouts, truncated bodies and malformed replies are retried with
  exponential backoff (``backoff * 2**attempt`` seconds, capped by `max_backoff`; a numeric Retry-After header
  wins when given). Other 4xx and a redirect elsewhere are not. When retries run out, or on an error retrying
  cannot fix, the Generation comes back with ``error`` set: the rollout records that episode as failed and every
  other episode of the batch goes on.
* Replies are read by :func:`hero_gym.policies.openai_reply.parse_reply`: tool calls become the structured text
  action (several calls keep the OpenAI ``{"content", "tool_calls"}`` shape; the env runs the first and counts the
  rest as dropped), the server's ``usage`` gives the token counts, ``logprobs=True`` asks for log-probabilities
  (token ids are not part of the API, so ``token_ids`` stays None).
* A batch is sent concurrently, at most `concurrency` requests at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from hero_gym.policies.base import ChatRequest
from hero_gym.policies.openai_reply import MalformedReply, parse_reply
from hero_gym.types import Generation

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
REDACTED = "[REDACTED]"
# "Authorization: Bearer x", '"authorization": "Basic x"', "api_key=x": keep the name, hide the value.
_AUTH_VALUE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api[-_]?key)([\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?"
    r"[^\s\"',;}\]]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without any of `secrets` (each at least 4 characters) and without the value of any Authorization
    header, Bearer token or api_key field it shows."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, REDACTED)
    text = _AUTH_VALUE.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) or "") + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    """An error retrying cannot fix (a 4xx, a redirect to another origin)."""


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


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


class OpenAIHTTPPolicy:
    """Policy over an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: e.g. "http://127.0.0.1:8000/v1" (``/chat/completions`` is appended).
        model: the model name the server expects.
        api_key_env: name of the environment variable holding the key.
        timeout: seconds one attempt may take in all (connect, send, wait, read the whole body).
        max_retries: retries after the first attempt for retryable failures.
        backoff: base delay in seconds; attempt k waits ``backoff * 2**k`` (capped by max_backoff).
        max_backoff: the longest wait between attempts (also caps a server's Retry-After).
        concurrency: parallel requests per batch.
        logprobs: ask the server for log-probabilities of the sampled tokens.
        extra_body: extra JSON fields sent with every request (e.g. {"top_k": 20} for vLLM).
        max_reply_bytes: the largest reply body read; a longer one is a malformed reply.
        name: the policy's name in records (default "http:MODEL").
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 8,
                 logprobs: bool = False, extra_body: dict | None = None, name: str | None = None,
                 max_reply_bytes: int = 16 * 2**20):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not timeout or timeout <= 0 or backoff < 0 or concurrency < 1 or max_reply_bytes < 1:
            raise ValueError("timeout must be > 0, backoff >= 0, concurrency >= 1 and max_reply_bytes >= 1")
        try:
            url = httpx.URL(base_url.rstrip("/") + "/chat/completions")
        except httpx.InvalidURL as e:
            raise ValueError(f"base_url is not a valid URL: {e}") from None
        self.url = str(url)
        self._origin = _origin(url)
        self._url_password = url.password or ""
        self.display_url = str(url.copy_with(username=None, password=None))  # what error messages show
        self.model = model
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = float(timeout), max_retries
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.concurrency = int(concurrency)
        self.logprobs = bool(logprobs)
        self.extra_body = dict(extra_body or {})
        self.max_reply_bytes = int(max_reply_bytes)
        self.name = name or f"http:{model}"
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

    # ----- public API -------------------------------------------------------------------------------------------
    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """One Generation per request, in order; failures come back as Generations with ``error`` set."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._batch(list(requests)))
        # Called from inside an event loop (a notebook): run ours on a thread of its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._batch(list(requests))).result()

    # ----- internals ------------------------------------------------------------------------------------------
    def _secrets(self) -> tuple[str, ...]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return tuple(s for s in (key, self._url_password) if s)

    def _scrub(self, raw: bytes) -> bytes:
        """The body without the key: a server that echoes it into the content must not put it in the records."""
        for secret in self._secrets():
            if len(secret) >= 4:
                for form in (secret, json.dumps(secret)[1:-1]):  # as sent, and as JSON escapes it
                    raw = raw.replace(form.encode("utf-8"), REDACTED.encode())
        return raw

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https://"):
            return True
        with self._ssl_lock:  # building one costs ~20 ms; do it once per policy
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    async def _batch(self, requests: list[ChatRequest]) -> list[Generation]:
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)

        async def check_origin(request: httpx.Request) -> None:
            if _origin(request.url) != self._origin:  # a redirect elsewhere: never send the key (or the chat) there
                raise _Fatal(f"redirect to {request.url.copy_with(username=None, password=None, query=None)} not "
                             f"followed: it leaves the origin of {self.display_url}; set base_url to the new location")

        # httpx's own default (5 s per read) would cut off a model that thinks longer; our deadline is per attempt.
        async with httpx.AsyncClient(verify=self._ssl_context(), limits=limits, timeout=httpx.Timeout(self.timeout),
                                     follow_redirects=True, max_redirects=MAX_REDIRECTS,
                                     event_hooks={"request": [check_origin]}) as client:

            async def one(req: ChatRequest) -> Generation:
                async with gate:
                    try:
                        return await self._one(client, req)
                    except Exception as e:  # noqa: BLE001 -- a bug here must still fail only this request
                        return self._error(f"{type(e).__name__}: {e}")

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def _error(self, message: str) -> Generation:
        return Generation(text="", error=redact(message, self._secrets())[:2000], finish_reason="error")

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

    async def _one(self, client: httpx.AsyncClient, req: ChatRequest) -> Generation:
        try:
            payload = json.dumps(self._body(req)).encode("utf-8")
        except (TypeError, ValueError) as e:
            return self._error(f"request is not JSON-serialisable: {e}")
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                return parse_reply(self._scrub(await self._attempt(client, payload)))
            except _Fatal as e:
                return self._error(str(e))
            except (_Retryable, MalformedReply) as e:
                last = str(e) if isinstance(e, _Retryable) else f"malformed reply from {self.display_url}: {e}"
                if attempt < self.max_retries:
                    delay = min(self.backoff * 2**attempt, self.max_backoff)
                    retry_after = getattr(e, "retry_after", None)
                    if retry_after is not None:
                        delay = min(retry_after, self.max_backoff)
                    await asyncio.sleep(delay)
        return self._error(f"gave up after {self.max_retries + 1} attempts: {last}")

    async def _attempt(self, client: httpx.AsyncClient, payload: bytes) -> bytes:
        """The body of one successful (2xx) attempt; raises _Retryable or _Fatal otherwise."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = "Bearer " + key
        try:
            async with asyncio.timeout(self.timeout):  # the whole attempt, however the server paces its bytes
                async with client.stream("POST", self.url, content=payload, headers=headers) as resp:
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_reply_bytes:
                            raise MalformedReply(f"body longer than {self.max_reply_bytes} bytes")
                    status, retry_after = resp.status_code, resp.headers.get("Retry-After")
        except TimeoutError:
            raise _Retryable(f"timed out: no complete reply from {self.display_url} within {self.timeout:g} s") from None
        except httpx.TooManyRedirects:
            raise _Fatal(f"more than {MAX_REDIRECTS} redirects from {self.display_url}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise _Fatal(f"cannot follow {self.display_url}: {e}") from None
        except httpx.TransportError as e:  # connect/read/write errors, a body cut short, protocol errors
            raise _Retryable(f"{type(e).__name__} talking to {self.display_url}: {e or 'connection failed'}") from None
        if 200 <= status < 300:
            return bytes(body)
        detail = bytes(body[:300]).decode("utf-8", "replace")
        message = f"HTTP {status} from {self.display_url}: {detail}".strip()
        if status in RETRY_STATUS or status >= 500:
            raise _Retryable(message, _retry_after(retry_after))
        raise _Fatal(message)


def _retry_after(value) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return None if seconds is None or seconds != seconds else max(0.0, seconds)
