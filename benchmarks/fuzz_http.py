"""Fuzzing the OpenAI-compatible HTTP policy against a local misbehaving server (127.0.0.1 only).

The server answers each request with a behaviour drawn from a seeded generator (by request id and attempt, so a
run is reproducible whatever the thread timing): good replies, replies with one node of the JSON replaced by junk
(null, a string, a huge integer, deep nesting, a lone surrogate, ...), garbage bytes, empty and truncated bodies,
trickled and late bodies, oversized bodies, every kind of status code with an error body echoing the key,
odd Retry-After values, redirects within the origin, to another origin and in a loop, broken chunked encoding and
dropped connections. A second server stands for "another origin": nothing may ever reach it.

Checked for every batch: ``generate`` returns one Generation per request and never raises, the key appears in no
text or error, nothing reaches the other origin, and a batch ends within the policy's retry and timeout bounds.

Run: ``OMP_NUM_THREADS=1 python -m hero_gym.benchmarks.fuzz_http --replies 3000 --seed 91017``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hero_gym.policies.base import ChatRequest
from hero_gym.policies.http import OpenAIHTTPPolicy

KEY_ENV = "HERO_GYM_FUZZ_KEY"
SECRET = "sk-fuzz-3b9d1e77c0"
_HUGE = "@@HUGE_INT@@"  # json.dumps cannot write an int over 4,300 digits; it is spliced in as text
_JUNK = [None, "abc", 7, -1.5, True, [], {}, [None], "", "\ud800", _HUGE, float("nan"), {"x": {"y": []}}]
STATUSES = [200, 201, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 502, 503, 504,
            599]


def _good(rng: random.Random) -> dict:
    message: dict = {"role": "assistant", "content": rng.choice(["Hello.", "", None, "Sure: ✓ 中文"])}
    if rng.random() < 0.5:
        message["tool_calls"] = [
            {"id": f"c{i}", "type": "function",
             "function": {"name": rng.choice(["get_order_details", "calculate", "think"]),
                          "arguments": rng.choice(['{"order_id": "#W1"}', "{}", "{oops", '{"a": [1, 2]}', ""])}}
            for i in range(rng.randint(1, 3))]
    reply = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message,
                                                                  "finish_reason": "stop"}]}
    if rng.random() < 0.5:
        reply["usage"] = {"prompt_tokens": rng.randint(0, 999), "completion_tokens": rng.randint(0, 99)}
    if rng.random() < 0.2:
        reply["choices"][0]["logprobs"] = {"content": [{"token": "t", "logprob": -0.5}]}
    return reply


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


def _mutate(rng: random.Random, reply: dict) -> str:
    """A good reply with one node (never the root) replaced by junk, as JSON text."""
    paths = [p for p in _nodes(reply) if p]
    path = rng.choice(paths)
    target = reply
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = rng.choice(_JUNK)
    return json.dumps(reply).replace(json.dumps(_HUGE), "9" * 5000)


def _deep(rng: random.Random) -> str:
    depth = rng.choice([101, 1000, 50_000])
    return '{"choices": [{"message": {"content": "x", "tool_calls": ' + "[" * depth + "]" * depth + "}}]}"


@dataclass
class Served:
    """What the misbehaving server did: behaviours used, requests seen, and whether a key ever arrived elsewhere."""

    behaviours: Counter = field(default_factory=Counter)
    requests: int = 0
    elsewhere: int = 0
    attempts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


BEHAVIOURS = ("good", "mutated", "deep", "huge_int", "surrogate", "garbage", "empty", "truncated", "trickle", "late",
              "oversized", "status", "redirect_same", "redirect_other", "redirect_loop", "bad_chunked", "drop",
              "not_json_type")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # connections the client cut (timeouts) are expected here


class MisbehavingServer:
    """Two local servers: `url` misbehaves as drawn; `other_url` is a foreign origin that must never be reached."""

    def __init__(self, seed: int, timeout: float):
        self.seed, self.timeout, self.served = seed, timeout, Served()
        served, outer = self.served, self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(n)) if n else {}
                    rid = str(body.get("messages", [{}])[-1].get("content", ""))
                    with served.lock:
                        served.requests += 1
                        served.attempts[rid] += 1
                        attempt = served.attempts[rid]
                    outer._answer(self, random.Random(f"{outer.seed}:{rid}:{attempt}"))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST

        class Elsewhere(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                with served.lock:
                    served.elsewhere += 1
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST

        self.main = _QuietServer(("127.0.0.1", 0), Handler)
        self.other = _QuietServer(("127.0.0.1", 0), Elsewhere)
        for s in (self.main, self.other):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.main.server_address[1]}/v1"
        self.other_url = f"http://127.0.0.1:{self.other.server_address[1]}/v1"

    def close(self):
        for s in (self.main, self.other):
            s.shutdown()
            s.server_close()

    def _send(self, h, status: int, body: bytes, headers: dict | None = None, length: int | None = None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()

    def _answer(self, h, rng: random.Random):
        kind = rng.choice(BEHAVIOURS)
        with self.served.lock:
            self.served.behaviours[kind] += 1
        echo = json.dumps({"error": "echo", "headers": dict(h.headers.items()),
                           "note": f"Authorization: Bearer {SECRET}"}).encode()
        if kind == "good":
            self._send(h, 200, json.dumps(_good(rng)).encode())
        elif kind == "mutated":
            self._send(h, 200, _mutate(rng, _good(rng)).encode())
        elif kind == "deep":
            self._send(h, 200, _deep(rng).encode())
        elif kind == "huge_int":
            self._send(h, 200, b'{"choices": [{"message": {"content": "hi"}}], "created": ' + b"9" * 5000 + b"}")
        elif kind == "surrogate":
            self._send(h, 200, b'{"choices": [{"message": {"content": "\\ud800 and \\udfff"}}]}')
        elif kind == "garbage":
            self._send(h, 200, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
        elif kind == "empty":
            self._send(h, rng.choice([200, 500]), b"")
        elif kind == "truncated":
            body = json.dumps(_good(rng)).encode()
            self._send(h, 200, body[: len(body) // 2], length=len(body))
            h.close_connection = True
        elif kind in ("trickle", "late"):
            body = json.dumps(_good(rng)).encode()
            if kind == "late":
                time.sleep(self.timeout * 1.5)
                self._send(h, 200, body)
                return
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            t_end = time.monotonic() + self.timeout * 20  # far past any deadline a per-read timeout would allow
            for i in range(len(body)):
                if time.monotonic() > t_end:
                    break
                h.wfile.write(body[i:i + 1])
                h.wfile.flush()
                time.sleep(self.timeout / 10)
            h.close_connection = True
        elif kind == "oversized":
            self._send(h, 200, b'{"choices": [{"message": {"content": "' + b"a" * 200_000 + b'"}}]}')
        elif kind == "status":
            status = rng.choice(STATUSES)
            headers = {"Retry-After": rng.choice(["0", "0.01", "abc", "-5", "nan", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT"])}
            self._send(h, status, echo if status not in (204, 304) else b"", headers)
        elif kind == "redirect_same":
            self._send(h, rng.choice([307, 308]), b"", {"Location": "/v1/chat/completions?again=1"})
        elif kind == "redirect_other":
            self._send(h, rng.choice([301, 302, 303, 307, 308]), b"", {"Location": self.other_url + "/chat/completions"})
        elif kind == "redirect_loop":
            self._send(h, 307, b"", {"Location": h.path})
        elif kind == "bad_chunked":
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.write(b"zz\r\n{\"choices\r\n")
            h.wfile.flush()
            h.close_connection = True
        elif kind == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
        else:  # not_json_type
            self._send(h, 200, json.dumps(rng.choice([[1, 2], "choices", 3, None, {"choices": {}}])).encode())


@dataclass
class FuzzResult:
    replies: int
    generations: int
    ok: int
    errors: int
    worst_batch_s: float
    bound_s: float
    behaviours: dict
    elsewhere: int
    leaks: int
    wall_s: float


def fuzz_replies(replies: int, seed: int, *, batch: int = 16, timeout: float = 0.3, max_retries: int = 1,
                 time_budget_s: float = 600.0, slack_s: float = 5.0) -> FuzzResult:
    """Send batches until the server has answered `replies` requests (or the time budget is spent) and check the
    invariants above; raises AssertionError at the first violation."""
    old_key = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = SECRET
    server = MisbehavingServer(seed, timeout)
    policy = OpenAIHTTPPolicy(server.url, "fuzz", api_key_env=KEY_ENV, timeout=timeout, max_retries=max_retries,
                              backoff=0.0, max_backoff=0.01, concurrency=8, max_reply_bytes=64 * 1024)
    # Every attempt ends within `timeout` and waits between attempts are capped by max_backoff; `slack_s` absorbs
    # a loaded machine's scheduling (the server runs in this process too). A trickled body lasts 20 x timeout, so a
    # per-read timeout would still break this bound.
    bound = (max_retries + 1) * (timeout + 0.01) * -(-batch // policy.concurrency) + slack_s
    gens = ok = leaks = 0
    worst = 0.0
    t_start = time.perf_counter()
    try:
        i = 0
        while server.served.requests < replies and time.perf_counter() - t_start < time_budget_s:
            reqs = [ChatRequest(messages=[{"role": "user", "content": f"r{i + j}"}], tools=None)
                    for j in range(batch)]
            i += batch
            t0 = time.perf_counter()
            out = policy.generate(reqs)
            dt = time.perf_counter() - t0
            worst = max(worst, dt)
            assert len(out) == len(reqs), f"{len(out)} generations for {len(reqs)} requests"
            for g in out:
                gens += 1
                assert isinstance(g.text, str) and (g.error is None or isinstance(g.error, str)), g
                shown = g.text + (g.error or "")
                if SECRET in shown or f"Bearer {SECRET[:6]}" in shown:
                    leaks += 1
                ok += g.error is None
            assert dt <= bound, f"a batch took {dt:.2f} s, over the bound of {bound:.2f} s"
            assert server.served.elsewhere == 0, "a request reached another origin"
        assert leaks == 0, f"the key appeared in {leaks} generation(s)"
    finally:
        server.close()
        if old_key is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = old_key
    return FuzzResult(replies=server.served.requests, generations=gens, ok=ok, errors=gens - ok, worst_batch_s=worst,
                      bound_s=bound, behaviours=dict(server.served.behaviours), elsewhere=server.served.elsewhere,
                      leaks=leaks, wall_s=time.perf_counter() - t_start)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replies", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=91017)
    ap.add_argument("--timeout", type=float, default=0.3)
    args = ap.parse_args(argv)
    r = fuzz_replies(args.replies, args.seed, timeout=args.timeout)
    print(json.dumps({k: v for k, v in vars(r).items()}, indent=2, default=str))


if __name__ == "__main__":
    main()
