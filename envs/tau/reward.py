"""TauBench rewards: v1's (database match AND every required output said) and tau2's product of components.

The gold database state of a task is what its gold tool calls (terminate tools excluded) produce on a fresh
database. Upstream recomputes it, and hashes both whole databases, at every reward; here it is computed once per
task and process and kept as the canonical strings of the records it touched (see ``db.py``), so a reward compares
only records that either side touched. Equality is upstream's (``str(to_hashable(...))`` semantics).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from hero_gym.envs.tau.db import TauDB
from hero_gym.envs.tau.tasks import Task

TERMINATE_TOOLS = frozenset({"transfer_to_human_agents"})
TAU2_COMPONENTS = ("DB", "COMMUNICATE", "NL_ASSERTION", "ACTION", "ENV_ASSERTION")

Snapshot = dict[str, dict[str, str | None]]
_GOLD: dict[tuple, tuple[Snapshot, tuple[str, ...], Any]] = {}


def run_tool(db: TauDB, tools: Mapping[str, Callable[..., str]], name: str, kwargs: dict) -> str:
    """Call a tool the way upstream's ``Env.step`` does: an exception becomes ``"Error: {e}"``, never a crash."""
    try:
        out = tools[name](db, **kwargs)
    except Exception as e:  # noqa: BLE001 -- upstream turns every tool exception into an observation
        return f"Error: {e}"
    if out is None:  # upstream would crash building its response; say so instead
        return f"Error: tool {name} returned no result"
    return out if isinstance(out, str) else str(out)


def gold_state(task: Task, tools: Mapping[str, Callable[..., str]]) -> tuple[Snapshot, tuple[str, ...]]:
    """(snapshot of the records the gold calls touched, the gold calls' observations); cached per task."""
    # The entry keeps a reference to `tools`, so no other tool table can reuse its id while the entry lives.
    key = (task.version, task.domain, id(tools), json.dumps(task.actions, sort_keys=True))
    hit = _GOLD.get(key)
    if hit is None or hit[2] is not tools:
        db = TauDB(task.version, task.domain)
        outs = tuple(
            run_tool(db, tools, a["name"], a["kwargs"])
            for a in task.actions
            if a["name"] not in TERMINATE_TOOLS and a["name"] in tools
        )
        hit = _GOLD[key] = (db.snapshot(), outs, tools)
    return hit[0], hit[1]


def outputs_said(outputs: tuple[str, ...] | list[str], said: list[str]) -> dict[str, bool]:
    """For each required output, whether some message to the user contains it (upstream's rule: case-insensitive,
    commas removed from the agent's text only)."""
    folded = [m.lower().replace(",", "") for m in said]
    return {out: any(out.lower() in m for m in folded) for out in outputs}


def db_component(task: Task, db: TauDB, tools: Mapping[str, Callable[..., str]]) -> tuple[float, dict]:
    snapshot, _ = gold_state(task, tools)
    diff = db.diff(snapshot)
    return (1.0 if not diff else 0.0), {"db_match": not diff, "db_diff": [{"table": t, "key": k} for t, k in diff]}


def v1_reward(task: Task, db: TauDB, said: list[str], tools: Mapping[str, Callable[..., str]]) -> tuple[float, dict]:
    """Upstream v1 reward: 1.0 iff the database equals the gold state and every `outputs` string was said."""
    r_db, info = db_component(task, db, tools)
    found = outputs_said(task.outputs, said)
    missing = [o for o, ok in found.items() if not ok]
    reward = 1.0 if r_db == 1.0 and not missing else 0.0
    reasons = []
    if r_db < 1.0:
        reasons.append(f"database differs from the gold state in {len(info['db_diff'])} record(s)")
    if missing:
        reasons.append(f"required output(s) never said to the user: {missing}")
    info.update(reward=reward, outputs=found, missing_outputs=missing, reason="; ".join(reasons) or None)
    return reward, info


# ------------------------------------------------------------------------------------------------------- tau2
_JUDGE_SYSTEM = (
    "You grade a customer-service conversation between an agent and a customer. For each expected outcome listed "
    "by the user, decide from the transcript alone whether the agent's behaviour met it. Answer with JSON only: "
    '{"results": [{"expectedOutcome": <the outcome text>, "reasoning": <one sentence>, "metExpectation": '
    "<true or false>}, ...]} with one entry per outcome, in the given order."
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def _transcript(messages: list[dict]) -> str:
    lines = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "assistant" and m.get("tool_calls"):
            for c in m["tool_calls"]:
                fn = c.get("function", {})
                lines.append(f"assistant (tool call): {fn.get('name')}({fn.get('arguments')})")
            if m.get("content"):
                lines.append(f"assistant: {m['content']}")
            continue
        who = {"user": "customer", "assistant": "agent", "tool": "tool result"}.get(role, str(role))
        lines.append(f"{who}: {m.get('content', '')}")
    return "\n".join(lines)


def judge_nl_assertions(judge: Any, assertions: tuple[str, ...], messages: list[dict]) -> tuple[float, dict]:
    """Ask a judge Policy whether each NL assertion holds; 1.0 only if all do. Unparsable answers count as 0."""
    from hero_gym.policies.base import ChatRequest

    prompt = "Transcript:\n" + _transcript(messages) + "\n\nExpected outcomes:\n" + "\n".join(
        f"- {a}" for a in assertions
    )
    request = ChatRequest(
        messages=[{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
        temperature=0.0,
        max_new_tokens=1024,
    )
    try:
        gen = judge.generate([request])[0]
    except Exception as e:  # noqa: BLE001 -- a failing judge scores 0 and says why; it does not end the run
        return 0.0, {"error": f"judge failed: {type(e).__name__}: {e}"}
    if getattr(gen, "error", None):
        return 0.0, {"error": f"judge failed: {gen.error}"}
    m = _JSON_OBJECT.search(gen.text or "")
    try:
        results = json.loads(m.group(0))["results"] if m else None
        met = [bool(r["metExpectation"]) for r in results]
    except (json.JSONDecodeError, KeyError, TypeError):
        return 0.0, {"error": "judge answer is not the expected JSON", "judge_text": gen.text}
    if len(met) != len(assertions):
        return 0.0, {"error": f"judge graded {len(met)} outcomes, expected {len(assertions)}", "judge_text": gen.text}
    return (1.0 if all(met) else 0.0), {"results": [{"assertion": a, "met": ok} for a, ok in zip(assertions, met)]}


def tau2_reward(
    task: Task,
    db: TauDB,
    said: list[str],
    tools: Mapping[str, Callable[..., str]],
    *,
    basis: tuple[str, ...] | None = None,
    judge: Any = None,
    messages: list[dict] | None = None,
) -> tuple[float, dict]:
    """tau2's reward: the product of the components in the task's `reward_basis` (or `basis` if given).

    DB: database equals the gold state. COMMUNICATE: every ``communicate_info`` string said (v1's rule).
    NL_ASSERTION: a judge Policy grades the ``nl_assertions``; without a judge the component is not evaluated, is
    listed in ``not_evaluated`` and left out of the product. No assertions at all scores 1.0, as upstream.
    """
    basis = tuple(task.reward_basis if basis is None else basis)
    unknown = [c for c in basis if c not in TAU2_COMPONENTS]
    if unknown:
        raise ValueError(f"unknown tau2 reward component(s) {unknown}; known: {TAU2_COMPONENTS}")
    components: dict[str, float | None] = {}
    info: dict[str, Any] = {"reward_basis": list(basis), "not_evaluated": []}
    for comp in basis:
        if comp == "DB":
            components[comp], db_info = db_component(task, db, tools)
            info.update(db_info)
        elif comp == "COMMUNICATE":
            found = outputs_said(task.outputs, said)
            info["communicate"] = found
            info["missing_outputs"] = [o for o, ok in found.items() if not ok]
            components[comp] = 0.0 if info["missing_outputs"] else 1.0
        elif comp == "NL_ASSERTION":
            if not task.nl_assertions:
                components[comp] = 1.0
            elif judge is None:
                components[comp] = None
                info["not_evaluated"].append(comp)
            else:
                components[comp], info["nl_assertions"] = judge_nl_assertions(judge, task.nl_assertions, messages or [])
        else:  # ACTION / ENV_ASSERTION: no retail or airline task uses them
            components[comp] = None
            info["not_evaluated"].append(comp)
    evaluated = [v for v in components.values() if v is not None]
    reward = 1.0
    for v in evaluated:
        reward *= v
    info["components"] = components
    info["reward"] = reward
    reasons = [f"{c} component is 0" for c, v in components.items() if v == 0.0]
    if info["not_evaluated"]:
        reasons.append(
            f"not evaluated (reward is the product of the other components): {info['not_evaluated']}"
            + (" -- pass judge= to grade NL assertions" if "NL_ASSERTION" in info["not_evaluated"] else "")
        )
    info["reason"] = "; ".join(reasons) or None
    return reward, info
