"""TauBench tasks, v1 and tau2, normalised into one :class:`Task` record.

v1 task files are lists of ``{user_id, instruction, actions: [{name, kwargs}], outputs, annotator}``; the splits are
retail train/test/dev and airline test. tau2 has one ``tasks.json`` per domain (ids are strings) and
``split_tasks.json`` naming the ids of each split (train/test/base); a split keeps the order its id list gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from hero_gym.data import load_json
from hero_gym.envs.tau.db import base_tables

V1_SPLITS = {"retail": ("train", "test", "dev"), "airline": ("test",)}
TAU2_SPLITS = ("train", "test", "base")
VERSIONS = ("v1", "tau2")
DOMAINS = ("retail", "airline")
# tau2's default when a task gives no reward_basis.
TAU2_DEFAULT_BASIS = ("DB", "COMMUNICATE")


@dataclass(frozen=True)
class Task:
    """One TauBench task, whatever the version.

    actions: the gold tool calls as ``{"name": str, "kwargs": dict}`` (tau2's ``arguments`` renamed to ``kwargs``).
        Shared with the loaded data: read, never mutate.
    outputs: strings the agent must say to the user (v1 ``outputs``; tau2 ``communicate_info``).
    reward_basis: the reward components; v1 tasks have ``("DB", "OUTPUTS")``.
    instruction: what the simulated user is told (v1 text as is; tau2 rendered from ``user_scenario``).
    user_scenario: tau2's structured scenario (persona and instructions), None for v1.
    """

    id: str
    index: int
    domain: str
    version: str
    split: str
    user_id: str | None
    instruction: str
    actions: tuple[dict, ...]
    outputs: tuple[str, ...] = ()
    nl_assertions: tuple[str, ...] = ()
    reward_basis: tuple[str, ...] = ("DB", "OUTPUTS")
    user_scenario: dict | None = None
    description: dict | None = None
    annotator: str | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def gold_actions(self) -> list[dict]:
        """The gold tool calls, ``{"name", "kwargs"}`` each (a new list; the dicts are shared, do not mutate)."""
        return list(self.actions)


def check_version_domain(version: str, domain: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unknown TauBench version {version!r}; choose one of {VERSIONS}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown TauBench domain {domain!r}; choose one of {DOMAINS}")


def splits(version: str, domain: str) -> tuple[str, ...]:
    """The split names a (version, domain) has."""
    check_version_domain(version, domain)
    return V1_SPLITS[domain] if version == "v1" else TAU2_SPLITS


@lru_cache(maxsize=None)
def load_tasks(version: str, domain: str, split: str) -> tuple[Task, ...]:
    """All tasks of a split, in upstream order; cached per process."""
    if split not in splits(version, domain):
        raise ValueError(
            f"TauBench {version} {domain} has no split {split!r}; splits: {list(splits(version, domain))}"
        )
    if version == "v1":
        return tuple(_v1_task(r, i, domain, split) for i, r in enumerate(load_json("tau-v1", f"tau/v1/{domain}/tasks_{split}.json")))
    raw = load_json("tau2", f"tau/tau2/{domain}/tasks.json")
    by_id = {str(t["id"]): t for t in raw}
    ids = load_json("tau2", f"tau/tau2/{domain}/split_tasks.json")[split]
    missing = [i for i in ids if str(i) not in by_id]
    if missing:
        raise ValueError(f"tau2 {domain} split {split!r} names task ids missing from tasks.json: {missing[:5]}")
    return tuple(_tau2_task(by_id[str(tid)], i, domain, split) for i, tid in enumerate(ids))


def _v1_task(r: dict, index: int, domain: str, split: str) -> Task:
    return Task(
        id=f"{split}-{index}",
        index=index,
        domain=domain,
        version="v1",
        split=split,
        user_id=r["user_id"],
        instruction=r["instruction"],
        actions=tuple({"name": a["name"], "kwargs": a["kwargs"]} for a in r["actions"]),
        outputs=tuple(r.get("outputs") or ()),
        reward_basis=("DB", "OUTPUTS"),
        annotator=r.get("annotator"),
    )


_SCENARIO_FIELDS = (
    ("domain", "Domain"),
    ("reason_for_call", "Reason for call"),
    ("known_info", "Known info"),
    ("unknown_info", "Unknown info"),
    ("task_instructions", "Task instructions"),
)
_USER_ID_RE = re.compile(r"user id is:?\s*'?([A-Za-z0-9_]+)")


def render_scenario(scenario: dict) -> str:
    """tau2's user scenario as one instruction text (persona first, then the labelled instruction fields)."""
    parts = []
    if scenario.get("persona"):
        parts.append(f"Persona:\n{scenario['persona']}")
    instr = scenario.get("instructions")
    if isinstance(instr, str):
        parts.append(instr)
    elif isinstance(instr, dict):
        for key, label in _SCENARIO_FIELDS:
            if instr.get(key):
                parts.append(f"{label}:\n{instr[key]}")
    return "\n\n".join(parts)


def _tau2_user_id(actions: tuple[dict, ...], scenario: dict, domain: str) -> str | None:
    # tau2 tasks do not name the user; the gold calls usually do, else the scenario's "user id is ..." line.
    for a in actions:
        uid = a["kwargs"].get("user_id") if isinstance(a["kwargs"], dict) else None
        if isinstance(uid, str):
            return uid
    m = _USER_ID_RE.search(render_scenario(scenario))
    if m:
        return m.group(1)
    return _user_id_from_lookups(actions, domain)


def _user_id_from_lookups(actions: tuple[dict, ...], domain: str) -> str | None:
    # Retail tasks identify the user by email or name + zip: resolve the gold lookup against the base users.
    tables = base_tables("tau2", domain)
    # Failing that, the owner of an order or reservation a gold call touches.
    for a in actions:
        for arg, table in (("order_id", "orders"), ("reservation_id", "reservations")):
            rec = tables[table].records.get(a["kwargs"].get(arg)) if table in tables else None
            if isinstance(rec, dict) and isinstance(rec.get("user_id"), str):
                return rec["user_id"]
    lookups = [a["kwargs"] for a in actions if a["name"] in ("find_user_id_by_email", "find_user_id_by_name_zip")]
    users = tables["users"].records
    for kw in lookups:
        for uid, rec in users.items():
            if "email" in kw and rec.get("email") == kw["email"]:
                return uid
            name, addr = rec.get("name") or {}, rec.get("address") or {}
            if (
                "zip" in kw
                and isinstance(name, dict)
                and str(name.get("first_name", "")).lower() == str(kw.get("first_name", "")).lower()
                and str(name.get("last_name", "")).lower() == str(kw.get("last_name", "")).lower()
                and addr.get("zip") == kw["zip"]
            ):
                return uid
    return None


def _tau2_task(r: dict, index: int, domain: str, split: str) -> Task:
    crit = r.get("evaluation_criteria") or {}
    actions = tuple({"name": a["name"], "kwargs": a.get("arguments") or {}} for a in crit.get("actions") or ())
    scenario = r.get("user_scenario") or {}
    basis = crit.get("reward_basis")
    return Task(
        id=str(r["id"]),
        index=index,
        domain=domain,
        version="tau2",
        split=split,
        user_id=_tau2_user_id(actions, scenario, domain),
        instruction=render_scenario(scenario),
        actions=actions,
        outputs=tuple(crit.get("communicate_info") or ()),
        nl_assertions=tuple(crit.get("nl_assertions") or ()),
        reward_basis=tuple(basis) if basis else TAU2_DEFAULT_BASIS,
        user_scenario=scenario,
        description=r.get("description"),
        extra={k: r[k] for k in ("initial_state", "ticket") if r.get(k) is not None},
    )


def task_user_record(task: Task) -> dict | None:
    """The task's user record from the frozen base database (read-only), or None when the task names no user."""
    if task.user_id is None:
        return None
    return base_tables(task.version, task.domain)["users"].records.get(task.user_id)
