"""OpenEnv: a hero-gym env served on 127.0.0.1 behaves, through the client, exactly as in-process."""

import os
import signal
import socket
import subprocess
import sys
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
def server():
    """Start `python -m hero_gym.integrations.openenv ENV` on a free port; yield (url, process); always stop it."""
    procs = []

    def start(env_id, *args):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "hero_gym.integrations.openenv", env_id, "--port", str(port),
                                 *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return f"http://127.0.0.1:{port}", proc
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 120 s")

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("env_id,tasks", [("hero_gym/Tau2Retail-v0", [0, 1]), ("hero_gym/WebShop-v0", [0, 1])])
def test_oracle_through_the_client_matches_in_process(server, env_id, tasks):
    url, _ = server(env_id)
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
def test_killed_server_mid_episode_is_a_clear_error_not_a_hang(server):
    url, proc = server("hero_gym/Tau2Retail-v0")
    env = OpenEnvClientEnv(url, message_timeout_s=20)
    env.reset(seed=0, options={"task_index": 0})
    env.step("Hello, how can I help?")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    start = time.monotonic()
    with pytest.raises(EnvServerError, match=f"OpenEnv server at {url}"):
        env.step("Are you still there?")
    assert time.monotonic() - start < 10  # the closed socket is noticed at once, not after the message timeout
    env.close()


def test_unknown_env_id_is_refused_before_serving():
    from hero_gym.integrations.openenv import make_app

    with pytest.raises(ValueError, match="unknown environment"):
        make_app("hero_gym/Nope-v0")
