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


class Raw:
    """A scripted reply written by hand: `write(handler)` sends status, headers and body itself."""

    def __init__(self, write):
        self.write = write


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
                if isinstance(entry, Raw):
                    try:
                        entry.write(self)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
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
                    self.wfile.write(text if isinstance(text, bytes) else text.encode())
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
    assert time.perf_counter() - t0 < 10  # Retry-After 0.01 honoured (slack: a loaded box)
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
    assert time.perf_counter() - t0 < 10  # two 0.2 s attempts, not the 0.6 s reply (slack: a loaded box)
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
    # The server answers only once all four requests are in flight together (a timing-free proof of concurrency).
    together = threading.Barrier(4, timeout=20)

    def reply(body):
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return 400, "requests did not overlap", {}
        return _reply("echo " + body["messages"][-1]["content"])

    stub.script = [reply]
    gens = _policy(stub, concurrency=4, timeout=30).generate([_req(f"m{i}") for i in range(4)])
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


# ----- hardening: a bad reply is that request's error, the key never leaks, deadlines are whole-request ---------

def _bad(tool_calls=None, **message):
    msg = {"role": "assistant", "content": None, **message}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return json.dumps({"choices": [{"message": msg, "finish_reason": "tool_calls"}]})


MALFORMED = {
    "null_call": _bad([None]),
    "string_calls": _bad("abc"),
    "string_function": _bad([{"id": "c", "type": "function", "function": "get_order_details"}]),
    "deep": '{"choices": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge_int": '{"choices": [{"message": {"content": "hi"}}], "created": ' + "9" * 5000 + "}",
    "content_object": _bad(content={"text": "hi"}),
    "not_utf8": b'{"choices": [{"message": {"content": "\xff\xfe"}}]}',
}


def test_one_malformed_reply_fails_only_its_own_request(stub):
    # Requests named "good*" get a fine reply; each other one gets one kind of malformed reply, every time.
    def reply(body):
        name = body["messages"][-1]["content"]
        if name.startswith("good"):
            return _reply("fine " + name)
        return 200, MALFORMED[name], {}

    stub.script = [reply]
    names = ["good0", *MALFORMED, "good1"]
    gens = _policy(stub, max_retries=1, concurrency=4).generate([_req(n) for n in names])
    assert [g.text for g in gens if g.error is None] == ["fine good0", "fine good1"]
    for name, g in zip(names[1:-1], gens[1:-1]):
        assert g.finish_reason == "error" and "malformed reply" in g.error and "2 attempts" in g.error, (name, g)
    # the policy's retry rule applies to a malformed reply: each bad request was sent twice, each good one once
    counts = {n: sum(s["body"]["messages"][-1]["content"] == n for s in stub.seen) for n in names}
    assert counts == {n: 1 if n.startswith("good") else 2 for n in names}


def test_a_malformed_reply_then_a_good_one_succeeds(stub):
    stub.script = [(200, MALFORMED["null_call"], {}), _reply("second time lucky")]
    g = _policy(stub, max_retries=2).generate([_req()])[0]
    assert g.error is None and g.text == "second time lucky" and len(stub.seen) == 2


def test_the_key_never_reaches_an_error_or_the_records(stub, monkeypatch, tmp_path):
    from hero_gym.records import RunStore, record_from_trajectory
    from hero_gym.rollout import EpisodeSpec, run_episodes
    from harness_toyenv import ToyEnv

    monkeypatch.setenv(KEY_ENV, SECRET)

    def echo(status):
        # a server that echoes the request headers in its error body, in several spellings
        return lambda body: (status, json.dumps({"seen": {"Authorization": f"Bearer {SECRET}",
                                                          "x": f"token={SECRET}", "api_key": "other-key-123"}}), {})

    stub.script = [echo(401)]
    g401 = _policy(stub).generate([_req()])[0]
    stub.script = [echo(500)]
    g500 = _policy(stub, max_retries=1).generate([_req()])[0]
    for g in (g401, g500):
        assert "HTTP" in g.error and SECRET not in g.error and "other-key-123" not in g.error
        assert "[REDACTED]" in g.error
    # a model that says the key (because the server put it there) does not store it either
    stub.script = [_reply(f"your key is {SECRET}")]
    assert _policy(stub).generate([_req()])[0].text == "your key is [REDACTED]"

    stub.script = [echo(500)]
    store = RunStore(tmp_path / "run")
    trajs = run_episodes(lambda **kw: ToyEnv(**kw), _policy(stub, max_retries=0), [EpisodeSpec(0, seed=1)])
    store.append(record_from_trajectory(trajs[0], attempt=0, policy="http"))
    text = store.episodes_path.read_text()
    assert "HTTP 500" in text and SECRET not in text


def test_a_password_in_base_url_is_not_shown(stub):
    stub.script = [(400, "no", {})]
    url = stub.url.replace("http://", "http://user:hunter2pass@")
    g = OpenAIHTTPPolicy(url, "m", api_key_env=KEY_ENV, backoff=0.01, timeout=2).generate([_req()])[0]
    assert "HTTP 400" in g.error and "hunter2pass" not in g.error


def test_cross_origin_redirects_are_not_followed_with_the_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    a, b = Stub(), Stub()
    try:
        b.script = [_reply("from b")]
        a.script = [(307, "", {"Location": b.url + "/chat/completions"})]
        g = _policy(a).generate([_req()])[0]
        assert g.finish_reason == "error" and "redirect" in g.error and "not followed" in g.error
        assert b.seen == [] and len(a.seen) == 1  # not retried either: retrying cannot fix it
        # within the origin, a redirect is followed and keeps the key
        a.script = [(307, "", {"Location": "/v2/chat/completions"}), _reply("moved")]
        g = _policy(a).generate([_req()])[0]
        assert g.text == "moved" and a.seen[-1]["path"] == "/v2/chat/completions"
        assert a.seen[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    finally:
        a.close()
        b.close()


def _trickle(seconds, step=0.05):
    def write(handler):
        body = _reply("slow")[1].encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        t_end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < t_end and i < len(body) - 1:  # a byte per step, never the last one in time
            handler.wfile.write(body[i:i + 1])
            handler.wfile.flush()
            i += 1
            time.sleep(step)
    return Raw(write)


def test_the_timeout_bounds_the_whole_request_not_each_read(stub):
    stub.script = [_trickle(12.0)]
    t0 = time.perf_counter()
    g = _policy(stub, timeout=0.5, max_retries=0).generate([_req()])[0]
    elapsed = time.perf_counter() - t0
    assert g.finish_reason == "error" and "timed out" in g.error and "0.5 s" in g.error
    assert elapsed < 6.0, elapsed  # a per-read timeout would wait the full 12 s of trickling (slack: a loaded box)


def test_a_truncated_body_is_retried(stub):
    def truncated(handler):
        body = _reply("whole")[1].encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        handler.close_connection = True

    stub.script = [Raw(truncated), _reply("whole")]
    g = _policy(stub, max_retries=2).generate([_req()])[0]
    assert g.error is None and g.text == "whole" and len(stub.seen) == 2


def test_usage_gives_the_token_counts(stub):
    from hero_gym.rollout import EpisodeSpec, run_episodes
    from harness_toyenv import ToyEnv

    def with_usage(body):
        data = json.loads(_reply("answer 0")[1])
        data["usage"] = {"prompt_tokens": 31, "completion_tokens": 4, "total_tokens": 35}
        return 200, json.dumps(data), {}

    stub.script = [with_usage]
    g = _policy(stub).generate([_req()])[0]
    assert (g.prompt_tokens, g.completion_tokens) == (31, 4)
    (traj,) = run_episodes(lambda **kw: ToyEnv(**kw), _policy(stub), [EpisodeSpec(0, seed=1)])
    assert traj.success and (traj.tokens_in, traj.tokens_out) == (31, 4)
    stub.script = [_reply("no usage")]  # optional in the API: absent means unknown, not an error
    g = _policy(stub).generate([_req()])[0]
    assert g.error is None and g.prompt_tokens is None


def test_several_tool_calls_are_dropped_counted_and_summarised(stub, tmp_path):
    from hero_gym.benchmarks.stats import format_summary, summarize
    from hero_gym.envs.tau.env import TauEnv
    from hero_gym.records import RunStore, load_frame, record_from_trajectory
    from hero_gym.rollout import EpisodeSpec, run_episodes

    calls = [{"id": f"c{i}", "type": "function",
              "function": {"name": "find_user_id_by_email", "arguments": json.dumps({"email": f"u{i}@x.com"})}}
             for i in range(3)]
    stub.script = [_reply("Looking you up.", tool_calls=calls, finish="tool_calls")]
    env = lambda **kw: TauEnv("retail", "v1", **kw)  # noqa: E731
    (traj,) = run_episodes(env, _policy(stub), [EpisodeSpec(0, seed=1, split="test")], env_kwargs={"max_turns": 1})
    (turn,) = traj.turns
    assert turn.observation == "Error: user not found"  # the first call ran; nothing was said to the user
    assert turn.info["dropped_tool_calls"] == 2 and traj.dropped_tool_calls == 2
    assert json.loads(turn.action)["tool_calls"] == calls  # what the model sent, dropped calls included
    assert traj.messages[-2]["content"] == "Looking you up."
    store = RunStore(tmp_path / "run")
    store.append(record_from_trajectory(traj, attempt=0, policy="http"))
    assert store.load()[0].dropped_tool_calls == 2
    table = format_summary(summarize(load_frame([store.dir])))
    assert "dropped_calls" in table.splitlines()[0] and table.splitlines()[2].rstrip(" |").endswith("2")


def test_generate_works_from_inside_an_event_loop(stub):
    import asyncio

    stub.script = [_reply("from a notebook")]

    async def main():
        return _policy(stub).generate([_req()])[0]

    assert asyncio.run(main()).text == "from a notebook"


@pytest.mark.slow
def test_a_server_slower_than_httpx_default_read_timeout_is_waited_for(stub):
    # httpx gives up after 5 s per read by default; the policy's own `timeout` must be what counts
    stub.script = [(*_reply("thought hard")[:3], 5.5)]
    g = _policy(stub, timeout=20, max_retries=0).generate([_req()])[0]
    assert g.error is None and g.text == "thought hard"
