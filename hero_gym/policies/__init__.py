"""Policy backends behind one interface (:class:`hero_gym.policies.base.Policy`).

Light names import eagerly; the model backends (torch, transformers, vLLM) load on first use, so
``import hero_gym.policies`` stays cheap.
"""

from hero_gym.policies.base import CallablePolicy, ChatRequest, Policy  # noqa: F401
from hero_gym.policies.scripted import ScriptedPolicy, load_policy  # noqa: F401

_LAZY = {
    "HFPolicy": "hero_gym.policies.hf",
    "OpenAIHTTPPolicy": "hero_gym.policies.http",
    "VLLMPolicy": "hero_gym.policies.vllm",
    "load_default_model": "hero_gym.policies.models",
    "load_model": "hero_gym.policies.models",
    "tiny_model": "hero_gym.policies.models",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hero_gym.policies' has no attribute {name!r}")


__all__ = ["CallablePolicy", "ChatRequest", "Policy", "ScriptedPolicy", "load_policy", *_LAZY]
