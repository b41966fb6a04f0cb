"""Serve a hero-gym env over OpenEnv's protocol and play it through the Gymnasium client (needs the openenv
extra). In production, start servers with ``python -m hero_gym.integrations.openenv ENV_ID --host 0.0.0.0 --port
8000`` on as many hosts as you like and give each rollout worker an ``OpenEnvClientEnv``. Here the server runs in
a thread of this process.

    python examples/openenv_server.py
"""

import socket
import threading
import time

import uvicorn

from hero_gym.integrations.openenv import OpenEnvClientEnv, make_app

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(make_app("hero_gym/WebShop-v0"), host="127.0.0.1", port=port,
                                       log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
try:
    while not server.started:
        time.sleep(0.05)
    env = OpenEnvClientEnv(f"http://127.0.0.1:{port}")
    obs, info = env.reset(seed=0, options={"task_index": 0})
    print(obs[:120], "...")
    obs, reward, terminated, truncated, info = env.step("search[womens sandals]")
    print(obs[:120], "...", reward, info["turns_left"])
    print(env.server_state())
    env.close()
finally:
    server.should_exit = True
    thread.join(timeout=30)
