"""OpenAIHTTPPolicy against a stub OpenAI-compatible server on 127.0.0.1 (bounded, fast)."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hero_gym.actions import parse_action
from hero_gym.policies.base import ChatRequest
from hero_gym.policies.http import OpenAIHTTPPolicy

KEY_ENV = "HERO_GYM_TEST_KEY"
SECRET = "sk-test-secret-8c1f"


def _reply(content=None, tool_calls=None, logprobs=None, finish="stop"):
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if tool_calls:
        choice["message"]["tool_calls"] = tool_calls
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": lp} for lp in logprobs]}
    return 200, json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}), {}


class Stub:
    """Serves scripted (status, body, headers[, delay]) replies in order; the last one repeats. A callable
    entry gets the request body and returns such a tuple."""

    def __init__(self):
        self.script, self.seen, self.lock = [], [], threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    entry = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                if callable(entry):
                    entry = entry(body)
                status, text, headers, *delay = entry
                if delay:
                    time.sleep(delay[0])
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(text.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def _policy(stub, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 2)
    return OpenAIHTTPPolicy(stub.url, "stub-model", api_key_env=KEY_ENV, **kw)


def _req(text="hi", **kw):
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


def test_success_sends_an_openai_request(stub, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    stub.script = [_reply("Hello!")]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    history = [{"role": "user", "content": "x"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    g = _policy(stub).generate([ChatRequest(history, tools=tools, seed=5, max_new_tokens=7, temperature=0.3,
                                            stop=["END"])])[0]
    assert g.error is None and g.text == "Hello!" and g.finish_reason == "stop"
    assert g.token_ids is None and g.logprobs is None
    (seen,) = stub.seen
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["Authorization"] == f"Bearer {SECRET}"
    body = seen["body"]
    assert body["model"] == "stub-model" and body["tools"] == tools and body["seed"] == 5
    assert body["max_tokens"] == 7 and body["temperature"] == 0.3 and body["stop"] == ["END"]
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'  # wire format is a string


def test_no_key_means_no_authorization_header(stub, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    stub.script = [_reply("ok")]
    assert _policy(stub).generate([_req()])[0].text == "ok"
    assert "Authorization" not in stub.seen[0]["headers"]


def test_500_then_success_is_retried(stub):
    stub.script = [(500, "boom", {}), (503, "busy", {}), _reply("fine")]
    g = _policy(stub).generate([_req()])[0]
    assert g.error is None and g.text == "fine"
    assert len(stub.seen) == 3


def test_429_gives_up_after_the_retries_with_an_error(stub, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    stub.script = [(429, '{"error": "rate limited"}', {"Retry-After": "0.01"})]
    t0 = time.perf_counter()
    g = _policy(stub, max_retries=2).generate([_req()])[0]
    assert time.perf_counter() - t0 < 2
    assert g.finish_reason == "error" and g.text == ""
    assert "429" in g.error and "3 attempts" in g.error
    assert SECRET not in g.error
    assert len(stub.seen) == 3


def test_client_error_is_not_retried(stub):
    stub.script = [(400, '{"error": "bad request"}', {})]
    g = _policy(stub).generate([_req()])[0]
    assert "HTTP 400" in g.error and len(stub.seen) == 1


def test_timeout_is_retried_then_reported(stub):
    stub.script = [(200, "{}", {}, 0.6)]
    t0 = time.perf_counter()
    g = _policy(stub, timeout=0.2, max_retries=1).generate([_req()])[0]
    assert time.perf_counter() - t0 < 2.5
    assert g.error and "timed out" in g.error.lower() and len(stub.seen) == 2


def test_malformed_json_reply_is_an_error(stub):
    stub.script = [(200, "{not json", {})]
    g = _policy(stub).generate([_req()])[0]
    assert "malformed reply" in g.error and g.finish_reason == "error"
    stub.script = [(200, '{"choices": []}', {})]
    assert "malformed reply" in _policy(stub).generate([_req()])[0].error


def test_tool_call_reply_becomes_a_structured_action(stub):
    calls = [{"id": "c9", "type": "function",
              "function": {"name": "get_order_details", "arguments": '{"order_id": "#W1"}'}},
             {"id": "c10", "type": "function", "function": {"name": "other", "arguments": "{}"}}]
    stub.script = [_reply(None, tool_calls=calls[:1], finish="tool_calls")]
    g = _policy(stub).generate([_req()])[0]
    assert json.loads(g.text) == {"name": "get_order_details", "arguments": {"order_id": "#W1"}}
    assert g.finish_reason == "tool_calls"
    # Several calls with text: the OpenAI shape is kept; the env's parser runs the first (one call per turn),
    # keeps the text as the call's content and counts the other call as dropped.
    stub.script = [_reply("let me check", tool_calls=calls, finish="tool_calls")]
    g = _policy(stub).generate([_req()])[0]
    action = parse_action(g.text)
    assert (action.kind, action.name, action.arguments) == ("tool", "get_order_details", {"order_id": "#W1"})
    assert action.content == "let me check" and action.dropped_calls == 1
    stub.script = [_reply(None, tool_calls=[{"id": "c", "type": "function",
                                              "function": {"name": "f", "arguments": "{oops"}}])]
    assert json.loads(_policy(stub).generate([_req()])[0].text) == {"name": "f", "arguments": "{oops"}


def test_logprobs_are_requested_and_parsed(stub):
    stub.script = [_reply("ab", logprobs=[-0.5, -1.25])]
    g = _policy(stub, logprobs=True).generate([_req()])[0]
    assert g.logprobs == [-0.5, -1.25] and stub.seen[0]["body"]["logprobs"] is True


def test_batch_is_concurrent_and_keeps_order(stub):
    stub.script = [lambda body: (*_reply("echo " + body["messages"][-1]["content"])[:3], 0.3)]
    reqs = [_req(f"m{i}") for i in range(4)]
    t0 = time.perf_counter()
    gens = _policy(stub, concurrency=4).generate(reqs)
    assert time.perf_counter() - t0 < 1.0  # sequential would take >= 1.2 s
    assert [g.text for g in gens] == [f"echo m{i}" for i in range(4)]


def test_unreachable_server_is_an_error_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    p = OpenAIHTTPPolicy(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.0, timeout=1)
    g = p.generate([_req()])[0]
    assert g.finish_reason == "error" and "2 attempts" in g.error


def test_constructor_validates_arguments():
    with pytest.raises(ValueError, match="http"):
        OpenAIHTTPPolicy("localhost:8000", "m")
    with pytest.raises(ValueError, match="model"):
        OpenAIHTTPPolicy("http://x/v1", "")
    with pytest.raises(ValueError, match="max_retries"):
        OpenAIHTTPPolicy("http://x/v1", "m", max_retries=-1)
    p = OpenAIHTTPPolicy("http://x/v1", "m")
    assert SECRET not in repr(vars(p))
