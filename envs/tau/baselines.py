"""Scripted TauBench policies: an oracle that replays a task's gold actions, and a random tool caller.

Both are :class:`~hero_gym.policies.base.Policy` objects and keep no per-episode state: everything they need comes
from the :class:`~hero_gym.policies.base.ChatRequest` (its ``context`` names the env id, split and task index; the
number of assistant messages so far says how far the episode is), so one instance serves any number of episodes
in a batch.
"""

from __future__ import annotations

import random
from typing import Any

from hero_gym.actions import format_tool_call
from hero_gym.envs.tau.db import base_tables
from hero_gym.envs.tau.reward import TERMINATE_TOOLS
from hero_gym.envs.tau.tasks import Task, load_tasks
from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation

FINAL_MESSAGE = "Your request has been completed successfully. Is there anything else I can help you with?"
CLOSING_MESSAGE = "Thank you for contacting us. Have a great day!"


def _env_facts(env_id: str) -> tuple[str, str, str]:
    """(domain, version, default split) of a registered TauBench env id."""
    from hero_gym.registry import get_spec

    spec = get_spec(env_id)
    if "domain" not in spec.kwargs or "version" not in spec.kwargs:
        raise ValueError(f"{env_id} is not a TauBench environment")
    return spec.kwargs["domain"], spec.kwargs["version"], spec.default_split


def task_from_context(context: dict) -> Task:
    """The task a request is about, from ``context`` {"env_id", "task_index", "split"} (split: the env's default)."""
    missing = [k for k in ("env_id", "task_index") if context.get(k) is None]
    if missing:
        raise ValueError(f"request context lacks {missing}; the oracle needs env_id and task_index (or a task)")
    domain, version, default_split = _env_facts(context["env_id"])
    tasks = load_tasks(version, domain, context.get("split") or default_split)
    index = context["task_index"]
    if not isinstance(index, int) or not 0 <= index < len(tasks):
        raise ValueError(f"task_index {index!r} is out of range for a split of {len(tasks)} tasks")
    return tasks[index]


def oracle_script(task: Task) -> list[str]:
    """The oracle's actions for a task, in order.

    Gold tool calls first (terminate tools held back), then one message to the customer that contains every
    required output string, then the held-back terminate calls (a gold transfer ends the episode after the outputs
    were said). Without a terminate call the customer is expected to end the conversation; the oracle keeps
    closing politely until it does.
    """
    calls = [format_tool_call(a["name"], a["kwargs"]) for a in task.actions if a["name"] not in TERMINATE_TOOLS]
    final = FINAL_MESSAGE
    if task.outputs:
        final = "Here is the information you asked for: " + "; ".join(task.outputs) + ". " + FINAL_MESSAGE
    ends = [format_tool_call(a["name"], a["kwargs"]) for a in task.actions if a["name"] in TERMINATE_TOOLS]
    return calls + [final] + ends[:1]


class OraclePolicy:
    """Replays the gold actions: scores 1.0 on every v1 task and the DB (and COMMUNICATE) component of tau2 tasks.

    Give a `task` to play that task whatever the request says, or let each request's ``context`` name it
    (``{"env_id", "task_index", "split"}``, as the rollout engine sets it). Its position in the script is the
    number of assistant messages already in the conversation.
    """

    def __init__(self, task: Task | None = None, env_id: str | None = None, name: str = "oracle", **_: Any):
        self.task = task
        self.env_id = env_id  # used when a request's context names no env
        self.name = name

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            try:
                task = self.task or task_from_context({"env_id": self.env_id, **(r.context or {})})
            except (ValueError, KeyError) as e:
                out.append(Generation(text="", error=f"oracle: {e}", finish_reason="error"))
                continue
            script = oracle_script(task)
            step = sum(1 for m in r.messages if m.get("role") == "assistant")
            out.append(Generation(text=script[step] if step < len(script) else CLOSING_MESSAGE))
        return out


# Argument names whose plausible values come from the database.
def _value_pools(domain: str, version: str) -> dict[str, list]:
    tables = {n: t.records for n, t in base_tables(version, domain).items()}
    users = list(tables["users"].values())
    pools: dict[str, list] = {
        "user_id": list(tables["users"]),
        "payment_method_id": sorted({p for u in users for p in (u.get("payment_methods") or {})}),
        "email": [u.get("email") for u in users if u.get("email")],
        "first_name": [u["name"]["first_name"] for u in users if isinstance(u.get("name"), dict)],
        "last_name": [u["name"]["last_name"] for u in users if isinstance(u.get("name"), dict)],
        "zip": [u["address"]["zip"] for u in users if isinstance(u.get("address"), dict)],
        "expression": ["2 + 2", "(10 - 3) * 4.5", "100 / 3"],
        "thought": ["Let me check the details first."],
        "summary": ["The customer needs help a tool cannot give."],
    }
    pools["payment_id"] = pools["payment_method_id"]
    if domain == "retail":
        pools["order_id"] = list(tables["orders"])
        pools["product_id"] = list(tables["products"])
        pools["item_id"] = [i for p in tables["products"].values() for i in p.get("variants", {})]
    else:
        pools["reservation_id"] = list(tables["reservations"])
        pools["flight_number"] = list(tables["flights"])
        pools["origin"] = sorted({f["origin"] for f in tables["flights"].values()})
        pools["destination"] = pools["origin"]
        pools["date"] = [f"2024-05-{d:02d}" for d in range(1, 31)]
        pools["dob"] = ["1990-01-01", "1985-06-15"]
    pools["item_ids"] = pools["new_item_ids"] = pools.get("item_id", [])
    return pools


class RandomToolPolicy:
    """Calls a random tool of the request's schema list with random but plausible arguments (ids drawn from the
    database), and now and then (probability `p_message`) sends a short message to the customer instead.

    Deterministic: the choice depends only on `seed`, the request's seed and the conversation length.
    """

    MESSAGES = ("Could you tell me more about your request?", "Let me look into that for you.", "Thank you!")

    def __init__(self, seed: int = 0, p_message: float = 0.1, env_id: str | None = None, name: str = "random", **_: Any):
        self.seed = seed
        self.env_id = env_id  # used when a request's context names no env
        self.p_message = p_message
        self.name = name
        self._pools: dict[tuple[str, str], dict[str, list]] = {}

    def _pool(self, context: dict, tools: list[dict]) -> dict[str, list]:
        env_id = context.get("env_id") or self.env_id
        if env_id:
            domain, version, _ = _env_facts(env_id)
        else:  # no context: tell the domain and version from the tools offered
            names = {t.get("function", t).get("name") for t in tools}
            domain = "airline" if "get_reservation_details" in names else "retail"
            # only tau2 has get_item_details / get_flight_status; reading v1 tables for it would need v1 data
            version = "tau2" if names & {"get_item_details", "get_flight_status"} else "v1"
        key = (domain, version)
        if key not in self._pools:
            self._pools[key] = _value_pools(domain, version)
        return self._pools[key]

    def _value(self, rng: random.Random, name: str, schema: dict, pools: dict[str, list]) -> Any:
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "array":
            n = rng.randint(1, 2)
            return [self._value(rng, name, schema.get("items") or {}, pools) for _ in range(n)]
        if kind == "object":
            props = schema.get("properties") or {}
            return {k: self._value(rng, k, s, pools) for k, s in props.items()}
        if kind == "integer":
            return rng.randint(0, 3)
        if kind == "number":
            return rng.choice([0, 50, 100.0, round(rng.uniform(1, 500), 2)])
        if kind == "boolean":
            return rng.random() < 0.5
        pool = pools.get(name)
        if pool:
            return rng.choice(pool)
        return rng.choice(["test", "none", ""])

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            rng = random.Random(f"{self.seed}/{r.seed}/{len(r.messages)}")
            tools = r.tools or []
            if not tools or rng.random() < self.p_message:
                out.append(Generation(text=rng.choice(self.MESSAGES)))
                continue
            fn = rng.choice(tools).get("function", {})
            try:
                pools = self._pool(r.context or {}, tools)
            except ValueError as e:
                out.append(Generation(text="", error=f"random: {e}", finish_reason="error"))
                continue
            props = (fn.get("parameters") or {}).get("properties") or {}
            args = {k: self._value(rng, k, s, pools) for k, s in props.items()}
            out.append(Generation(text=format_tool_call(fn.get("name", ""), args)))
        return out


BASELINES = {"oracle": OraclePolicy, "random": RandomToolPolicy}
