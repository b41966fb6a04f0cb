"""OpenEnv: a hero-gym env served on 127.0.0.1 behaves, through the client, exactly as in-process."""

import os
import signal
import socket
import time

import pytest

pytest.importorskip("openenv.core", reason="the openenv extra (make test installs it)")

from hero_gym.integrations.openenv import EnvServerError, OpenEnvClientEnv  # noqa: E402
from integration_helpers import oracle_episode  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def thread_server():
    """The server in a thread of this process (no second import of the server libraries); stopped at the end."""
    import threading

    import uvicorn

    from hero_gym.integrations.openenv import make_app

    servers = []

    def start(env_id):
        port = _free_port()
        srv = uvicorn.Server(uvicorn.Config(make_app(env_id), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        deadline = time.monotonic() + 60
        while not srv.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("env_id,tasks", [("hero_gym/Tau2Retail-v0", [0, 1]), ("hero_gym/WebShop-v0", [0, 1])])
def test_oracle_through_the_client_matches_in_process(thread_server, env_id, tasks):
    url = thread_server(env_id)
    env = OpenEnvClientEnv(url)
    try:
        for task in tasks:
            traj = oracle_episode(env_id, task, seed=task)
            obs, info = env.reset(seed=task, options={"task_index": task})
            assert obs == traj.initial_observation and info["task_index"] == task
            for turn in traj.turns:
                obs, reward, terminated, truncated, info = env.step(turn.action)
                assert (obs, reward) == (turn.observation, turn.reward)
            assert (terminated, truncated, info["termination_reason"]) == \
                   (traj.terminated, traj.truncated, traj.termination_reason)
            assert reward == traj.reward and traj.reward > 0
            state = env.server_state()
            assert state.done and state.task_index == task and state.turns_used == len(traj.turns)
        with pytest.raises(ValueError, match="out of range"):
            env.reset(options={"task_index": 10**6})
    finally:
        env.close()


@pytest.mark.slow
def test_killed_server_mid_episode_is_a_clear_error_not_a_hang():
    import multiprocessing

    from hero_gym.integrations.openenv import serve

    port = _free_port()
    # A forked child already has the server libraries imported; SIGKILL leaves it no chance to close cleanly.
    proc = multiprocessing.get_context("fork").Process(target=serve, args=("hero_gym/Tau2Retail-v0",),
                                                       kwargs={"port": port}, daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.is_alive() and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        env = OpenEnvClientEnv(url, message_timeout_s=20)
        env.reset(seed=0, options={"task_index": 0})
        env.step("Hello, how can I help?")
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        start = time.monotonic()
        with pytest.raises(EnvServerError, match=f"OpenEnv server at {url}"):
            env.step("Are you still there?")
        assert time.monotonic() - start < 10  # the closed socket is noticed at once, not after the message timeout
        env.close()
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout=30)


def test_unknown_env_id_is_refused_before_serving():
    from hero_gym.integrations.openenv import make_app

    with pytest.raises(ValueError, match="unknown environment"):
        make_app("hero_gym/Nope-v0")
