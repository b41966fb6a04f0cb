"""OpenEnv: serve any registered hero-gym env as an OpenEnv environment server, and use a server as a Gymnasium env.

Needs the ``openenv`` extra (``pip install 'hero-gym[openenv]'``: openenv-core, uvicorn).

Server (one env instance per WebSocket session, as OpenEnv's ``create_fastapi_app`` does it)::

    python -m hero_gym.integrations.openenv hero_gym/TauRetail-v0 --port 8000 --split test

    from hero_gym.integrations.openenv import make_app
    app = make_app("hero_gym/WebShop-v0", max_concurrent_envs=64, split="test")   # any ASGI server runs it

Client (again a ``gymnasium.Env``: same spaces, same step tuple and ``info`` as the env in-process)::

    from hero_gym.integrations.openenv import OpenEnvClientEnv
    env = OpenEnvClientEnv("http://127.0.0.1:8000")
    obs, info = env.reset(seed=0, options={"task_index": 3})
    obs, reward, terminated, truncated, info = env.step('{"name": "get_order_details", ...}')

The wire protocol is OpenEnv's (``reset``/``step``/``state`` messages over ``/ws``). An action is ``{"text": ...}``;
an observation carries ``text``, ``terminated``, ``truncated`` and the env's ``info`` (JSON), plus OpenEnv's
``reward`` and ``done``. Many servers behind one trainer is the scale-out path: start one per host or core and
give each rollout worker a client.

A server that goes away mid-episode (killed, network cut) raises :class:`EnvServerError` naming the URL on the
next call, within ``message_timeout_s`` at worst, never a hang.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hero_gym.extras import require_extra

require_extra("openenv", "openenv.core", "uvicorn")

import gymnasium as gym  # noqa: E402
from openenv.core.client_types import StepResult  # noqa: E402
from openenv.core.env_client import EnvClient  # noqa: E402
from openenv.core.env_server.http_server import create_fastapi_app  # noqa: E402
from openenv.core.env_server.interfaces import Environment  # noqa: E402
from openenv.core.env_server.types import Action, Observation, State  # noqa: E402
from pydantic import Field  # noqa: E402
from websockets.exceptions import WebSocketException  # noqa: E402

from hero_gym.env import AnyText  # noqa: E402


class TextAction(Action):
    """One agent turn: the agent's message as text (a tool call or a message, as the env reads it)."""

    text: str = Field(description="the agent's message")


class TextObservation(Observation):
    """What ``TextEnv.step`` returns, in OpenEnv's shape (``done`` = terminated or truncated)."""

    text: str = Field(default="", description="new text since the agent's last turn")
    terminated: bool = Field(default=False)
    truncated: bool = Field(default=False)
    info: dict[str, Any] = Field(default_factory=dict, description="the env's info dict (JSON-safe)")


class EpisodeState(State):
    """Server-side episode state (OpenEnv's ``state`` message)."""

    env_id: str = ""
    task_index: int | None = None
    turns_used: int = 0
    termination_reason: str | None = None
    done: bool = True


def _json_safe(obj: Any) -> Any:
    # info holds numpy scalars and tuples at times; the wire is JSON.
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


class HeroGymEnvironment(Environment):
    """An OpenEnv ``Environment`` around one hero-gym env (made with ``hero_gym.make(env_id, **env_kwargs)``)."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session gets its own env instance; envs share nothing mutable

    def __init__(self, env_id: str, **env_kwargs: Any):
        super().__init__()
        from hero_gym.registry import make

        self.env_id = env_id
        self.env = make(env_id, **env_kwargs)
        self._state = EpisodeState(env_id=env_id)

    def reset(self, seed: int | None = None, episode_id: str | None = None, task_index: int | None = None,
              options: dict | None = None, **_: Any) -> TextObservation:
        options = dict(options or {})
        if task_index is not None:
            options["task_index"] = task_index
        obs, info = self.env.reset(seed=seed, options=options or None)
        self._state = EpisodeState(episode_id=episode_id, step_count=0, env_id=self.env_id,
                                   task_index=info.get("task_index"), done=False)
        return TextObservation(text=obs, reward=0.0, done=False, info=_json_safe(info))

    def step(self, action: TextAction, timeout_s: float | None = None, **_: Any) -> TextObservation:
        obs, reward, terminated, truncated, info = self.env.step(action.text)
        s = self._state
        s.step_count += 1
        s.turns_used = int(info.get("turns_used", s.step_count))
        s.termination_reason = info.get("termination_reason")
        s.done = bool(terminated or truncated)
        return TextObservation(text=obs, reward=float(reward), done=s.done, terminated=bool(terminated),
                               truncated=bool(truncated), info=_json_safe(info))

    @property
    def state(self) -> EpisodeState:
        return self._state

    def close(self) -> None:
        self.env.close()


def make_app(env_id: str, *, max_concurrent_envs: int = 8, **env_kwargs: Any):
    """The FastAPI app serving `env_id` over OpenEnv's protocol (one env per session, up to `max_concurrent_envs`)."""
    from hero_gym.registry import get_spec

    get_spec(env_id)  # a clear error for an unknown id before any server starts

    def factory() -> HeroGymEnvironment:
        return HeroGymEnvironment(env_id, **env_kwargs)

    return create_fastapi_app(factory, TextAction, TextObservation, max_concurrent_envs=max_concurrent_envs)


def serve(env_id: str, *, host: str = "127.0.0.1", port: int = 8000, max_concurrent_envs: int = 8,
          **env_kwargs: Any) -> None:
    """Run the server in this process until interrupted."""
    import uvicorn

    uvicorn.run(make_app(env_id, max_concurrent_envs=max_concurrent_envs, **env_kwargs), host=host, port=port,
                log_level="warning")


class EnvServerError(ConnectionError):
    """The env server could not be reached or went away."""


class _TextClient(EnvClient[TextAction, TextObservation, EpisodeState]):
    def _step_payload(self, action: TextAction) -> dict[str, Any]:
        return {"text": action.text}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[TextObservation]:
        obs = TextObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                              done=payload.get("done", False))
        return StepResult(observation=obs, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> EpisodeState:
        return EpisodeState(**payload)


class OpenEnvClientEnv(gym.Env):
    """A Gymnasium env whose episodes run on an OpenEnv server (see :func:`serve`).

    base_url: ``http://host:port`` (or ``ws://``). connect_timeout_s / message_timeout_s: how long to wait for the
    server to accept the connection and to answer one message; past them, :class:`EnvServerError`.
    """

    metadata = {"render_modes": []}

    def __init__(self, base_url: str, *, connect_timeout_s: float = 10.0, message_timeout_s: float = 120.0):
        self.base_url = base_url
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self._client = _TextClient(base_url, connect_timeout_s=connect_timeout_s,
                                   message_timeout_s=message_timeout_s).sync()
        self._done = True

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            if str(e).startswith("Server error"):  # the env raised on the server (e.g. a bad task_index)
                raise ValueError(f"OpenEnv server at {self.base_url}: {e}") from None
            raise EnvServerError(f"OpenEnv server at {self.base_url} failed during {what}: {e}") from e
        except (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError, WebSocketException) as e:
            raise EnvServerError(f"OpenEnv server at {self.base_url} is unreachable or went away during {what}: "
                                 f"{type(e).__name__}: {e}") from e

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        kwargs: dict[str, Any] = {"options": dict(options or {})}
        if seed is not None:
            kwargs["seed"] = int(seed)
        result = self._call("reset", self._client.reset, **kwargs)
        self._done = False
        return result.observation.text, result.observation.info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._done:
            raise RuntimeError("step() called on a finished episode (or before reset()); call reset() first")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str (the agent's message), got {type(action).__name__}")
        result = self._call("step", self._client.step, TextAction(text=action))
        obs = result.observation
        self._done = bool(obs.terminated or obs.truncated)
        return obs.text, float(result.reward or 0.0), bool(obs.terminated), bool(obs.truncated), obs.info

    def server_state(self) -> EpisodeState:
        """The server's view of the episode (OpenEnv ``state``)."""
        return self._call("state", self._client.state)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a connection to a dead server has nothing left to clean up
            pass


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m hero_gym.integrations.openenv",
                                description="serve a hero-gym env over OpenEnv's protocol")
    p.add_argument("env_id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-concurrent-envs", type=int, default=8)
    p.add_argument("--split", default=None)
    p.add_argument("--max-turns", type=int, default=None)
    a = p.parse_args(argv)
    kw = {k: v for k, v in (("split", a.split), ("max_turns", a.max_turns)) if v is not None}
    serve(a.env_id, host=a.host, port=a.port, max_concurrent_envs=a.max_concurrent_envs, **kw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
