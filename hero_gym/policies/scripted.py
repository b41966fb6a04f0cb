"""Scripted replies for tests, and :func:`load_policy`, the one place a policy spec string becomes a Policy."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

from hero_gym.policies.base import CallablePolicy, ChatRequest, Policy
from hero_gym.types import Generation


class ScriptedPolicy:
    """Replies with the given strings in turn, cycling. The reply for a conversation is picked by how many assistant
    messages it already holds (turn t gets ``replies[t % len(replies)]``), so every episode of a batch follows the
    same script whatever the batch order."""

    def __init__(self, replies, name: str = "scripted"):
        if isinstance(replies, str):
            replies = [replies]
        replies = list(replies)
        if not replies or not all(isinstance(r, str) for r in replies):
            raise ValueError("ScriptedPolicy needs a non-empty list of reply strings")
        self.replies = replies
        self.name = name

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            turn = sum(1 for m in r.messages if m.get("role") == "assistant")
            out.append(Generation(text=self.replies[turn % len(self.replies)]))
        return out


SPEC_HELP = (
    "policy specs: 'smollm2' (embedded default model), 'tiny' (random test model), 'hf:PATH_OR_HUB_ID', "
    "'vllm:MODEL', 'http:BASE_URL#MODEL' or 'http://HOST/v1#MODEL' (OpenAI-compatible server), 'openai:MODEL', 'oracle', 'random', "
    "'scripted:REPLY', or 'package.module:factory' (a factory returning a Policy or a fn(messages, tools) -> str)"
)


def _accepted(fn, kw: dict) -> dict:
    """The subset of `kw` that `fn` accepts (all of it when fn takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kw)
    return {k: v for k, v in kw.items() if k in params}


def _baseline(kind: str, env_id: str | None, kw: dict) -> Policy:
    if not env_id:
        raise ValueError(f"policy {kind!r} is env-specific: pass env_id=... (e.g. 'hero_gym/WebShop-v0')")
    if "Tau" in env_id:
        module, names = "hero_gym.envs.tau.baselines", {"oracle": "OraclePolicy", "random": "RandomToolPolicy"}
    elif "WebShop" in env_id:
        module, names = "hero_gym.envs.webshop.baselines", {"oracle": "OraclePolicy", "random": "RandomPolicy"}
    else:
        raise ValueError(f"no {kind!r} baseline for env {env_id!r} (there are baselines for Tau* and WebShop* envs)")
    try:
        cls = getattr(importlib.import_module(module), names[kind])
    except (ImportError, AttributeError) as e:
        raise ImportError(f"the {kind} baseline for {env_id} ({module}.{names[kind]}) is not available: {e}") from e
    return cls(**_accepted(cls, {"env_id": env_id, **kw}))


def resolve_factory(spec: str):
    """The object a ``package.module:attr`` spec names, imported but not called. ValueError for a spec of another
    form, ImportError for a module that cannot be imported, AttributeError (with ``.obj`` and ``.name`` set to
    the object that lacks the attribute and the attribute) for a missing attribute."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".")) \
            or not all(p.isidentifier() for p in attr.split(".")):
        raise ValueError(f"unknown policy spec {spec!r}; {SPEC_HELP}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # let `my_agent:make` find my_agent.py beside the caller
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f"cannot import module {module_name!r} for policy spec {spec!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"module {module_name!r} has no attribute {attr!r} (policy spec {spec!r})",
                                 name=part, obj=obj)
        obj = getattr(obj, part)
    return obj


def _user_factory(spec: str, kw: dict) -> Policy:
    obj = resolve_factory(spec)
    if not callable(obj):
        raise TypeError(f"{spec!r} is not callable: expected a factory returning a Policy or a function")
    if hasattr(obj, "generate") and not inspect.isclass(obj):
        return obj  # the attribute is already a policy instance
    made = obj(**_accepted(obj, kw))
    if hasattr(made, "generate"):
        if not hasattr(made, "name"):
            made.name = spec
        return made
    if callable(made):
        return CallablePolicy(made, name=spec)
    raise TypeError(f"factory {spec!r} returned {type(made).__name__}: expected a Policy or a callable "
                    "fn(messages, tools) -> str")


def load_policy(spec: str, **kw) -> Policy:
    """Build a Policy from a spec string (see SPEC_HELP). Keyword args go to the backend when it accepts them;
    `env_id` selects the env-specific baselines ("oracle", "random") and `seed` seeds them."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"policy spec must be a non-empty string; {SPEC_HELP}")
    spec = spec.strip()
    env_id = kw.pop("env_id", None)
    if spec in ("smollm2", "tiny"):
        from hero_gym.policies.hf import HFPolicy

        return HFPolicy(spec, **_accepted(HFPolicy.__init__, kw))
    if spec in ("oracle", "random"):
        return _baseline(spec, env_id, kw)
    if spec.startswith("hf:"):
        from hero_gym.policies.hf import HFPolicy

        path = spec[3:]
        if not path:
            raise ValueError("'hf:' needs a model folder or hub id, e.g. hf:./my-model")
        return HFPolicy(path, **_accepted(HFPolicy.__init__, kw))
    if spec.startswith("vllm:"):
        from hero_gym.policies.vllm import VLLMPolicy

        if not spec[5:]:
            raise ValueError("'vllm:' needs a model, e.g. vllm:Qwen/Qwen3-1.7B")
        kw.pop("seed", None)
        return VLLMPolicy(spec[5:], **kw)
    if spec.startswith(("http:", "https:", "openai:")):
        from hero_gym.policies.http import OpenAIHTTPPolicy

        if spec.startswith("openai:"):
            base, model = "https://api.openai.com/v1", spec[len("openai:"):]
        else:
            # both 'http:BASE_URL#MODEL' and a bare 'http://host:port/v1#MODEL' are accepted
            rest = spec if spec.startswith(("http://", "https://")) else spec[len("http:"):]
            base, sep, model = rest.rpartition("#")
            if not sep:
                raise ValueError(f"http spec must be 'http:BASE_URL#MODEL', got {spec!r}")
        if not base or not model:
            raise ValueError(f"policy spec {spec!r} needs both a base URL and a model name")
        return OpenAIHTTPPolicy(base, model, **_accepted(OpenAIHTTPPolicy.__init__, kw))
    if spec.startswith("scripted:"):
        return ScriptedPolicy([spec[len("scripted:"):]])
    if Path(spec).expanduser().is_dir():
        from hero_gym.policies.hf import HFPolicy

        return HFPolicy(spec, **_accepted(HFPolicy.__init__, kw))
    if ":" in spec:
        return _user_factory(spec, {"env_id": env_id, **kw} if env_id else kw)
    raise ValueError(f"unknown policy spec {spec!r}; {SPEC_HELP}")
