"""Scripted WebShop baselines: an oracle that knows the goal and a uniform random clicker.

Both are :class:`hero_gym.policies.base.Policy` objects, so the rollout engine and the harness run them like any
model. Neither reads anything the env would not let it: the oracle learns the goal from ``ChatRequest.context``
({"env_id", "task_index", "split"}), the random policy reads the "Available actions:" list the env appends to each
observation in ``info["messages"]`` (``list_actions_in_messages=True``, the default).

Run ``python -m hero_gym.envs.webshop.baselines --goals synthetic --split test`` for the oracle's score.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from typing import Any

from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation

from .env import SEARCH_PLACEHOLDER, get_shop, get_task_goal
from .pages import PRODUCT_WINDOW
from .text import token_set_ratio

_ACTIONS_HEADER = "Available actions:\n"
# The env id of the human-goal variant; every other WebShop id uses synthetic goals.
_HUMAN_ENV_IDS = ("hero_gym/WebShopHuman-v0",)


def _query(text: str) -> str:
    # A query must survive the action parser: no brackets, no newline.
    return re.sub(r"[\[\]\n]+", " ", text).strip().lower()


def _n_assistant(messages: list[dict]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


class OraclePolicy:
    """Buys the goal product with the goal options, through the same search and pages an agent uses.

    Plan (computed once per goal, then replayed one action per turn; turn n = number of assistant messages so
    far): search the goal instruction; if the goal ASIN is not in its top 50, search the product's name; failing
    that, list the goal's query with the site's ``<q>`` search. Then ``Next >`` to the results page that shows
    the product, click it, click each goal option value (synthetic goals name the exact value; for human goals the
    product value closest by token-set ratio, if > 85), and ``Buy Now``.

    goal: a fixed goal dict for every request; otherwise it is looked up from ``context`` (env id -> goal kind,
    ``split``, ``task_index``) with ``setting``/``goal_seed`` (the env's ``setting``/``seed``) and, for a custom
    catalogue, ``catalogue_kwargs`` (the env's items_path/attrs_path/human_ins_path/cache_dir). ``env_id`` is the
    fallback when the context names none.
    """

    name = "webshop-oracle"

    def __init__(self, goal: dict | None = None, *, setting: str = "1k", goal_seed: int = 0,
                 catalogue_kwargs: dict | None = None, env_id: str | None = None):
        self.goal, self.setting, self.goal_seed, self.env_id = goal, setting, goal_seed, env_id
        self.catalogue_kwargs = dict(catalogue_kwargs or {})
        self._plans: dict[tuple, tuple[list[str], str]] = {}

    def plan(self, goal: dict) -> tuple[list[str], str]:
        """(actions, how the product was found: "instruction", "name", "query" or "not_found")."""
        key = (goal["asin"], goal["instruction_text"], repr(goal["goal_options"]))
        if key not in self._plans:
            self._plans[key] = self._make_plan(goal)
        return self._plans[key]

    def _make_plan(self, goal: dict) -> tuple[list[str], str]:
        shop = get_shop(self.setting, self.goal_seed, **self.catalogue_kwargs)
        asin = goal["asin"]
        product = shop.catalogue.by_asin[asin]
        rng = random.Random(0)  # only `<r>` uses it; never searched here
        for how, q in (("instruction", _query(goal["instruction_text"])), ("name", _query(product["Title"])),
                       ("query", "<q> " + _query(goal["query"]))):
            hits = shop.top_products(q.split(" "), rng) if q.strip() else []
            if asin in hits:
                page = hits.index(asin) // PRODUCT_WINDOW + 1
                break
        else:
            return [f"search[{_query(goal['instruction_text'])}]", "click[buy now]"], "not_found"
        actions = [f"search[{q}]"] + ["click[next >]"] * (page - 1) + [f"click[{asin.lower()}]"]
        actions += [f"click[{v}]" for v in self._option_values(product, goal["goal_options"])]
        return actions + ["click[buy now]"], how

    @staticmethod
    def _option_values(product: dict, goal_options: Any) -> list[str]:
        opts = product.get("options", {})
        if isinstance(goal_options, dict):  # synthetic: {name: value}, values taken from this product
            return [v for n, v in goal_options.items() if v in opts.get(n, ())]
        chosen: dict[str, str] = {}  # human: free-text values; pick the closest product value per option group
        for g in goal_options:
            best = max(((token_set_ratio(g, v), n, v) for n, vs in opts.items() for v in vs), default=None)
            if best is not None and best[0] > 85:
                chosen[best[1]] = best[2]
        return list(chosen.values())

    def _goal_for(self, ctx: dict) -> dict:
        if self.goal is not None:
            return self.goal
        missing = [k for k in ("task_index", "split") if ctx.get(k) is None]
        if missing:
            raise ValueError(f"OraclePolicy needs a goal or ChatRequest.context with {missing}")
        kind = "human" if (ctx.get("env_id") or self.env_id) in _HUMAN_ENV_IDS else "synthetic"
        return get_task_goal(kind, ctx["split"], int(ctx["task_index"]), self.setting, self.goal_seed,
                             **self.catalogue_kwargs)

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            try:
                actions, _ = self.plan(self._goal_for(r.context or {}))
            except (ValueError, KeyError, TypeError) as e:
                out.append(Generation(text="", error=f"{type(e).__name__}: {e}", finish_reason="error"))
                continue
            n = _n_assistant(r.messages)
            out.append(Generation(text=actions[n] if n < len(actions) else "click[buy now]"))
        return out


def parse_available_actions(messages: list[dict]) -> list[str] | None:
    """The action list the env appended to the last user message (None if there is none)."""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content") or ""
        at = content.rfind(_ACTIONS_HEADER)
        if at < 0:
            return None
        lines = content[at + len(_ACTIONS_HEADER):].split("\n")
        return [ln[2:] for ln in lines if ln.startswith("- ")]
    return None


class RandomPolicy:
    """Picks uniformly among the valid actions of the current page.

    Valid actions come from ``context["valid_actions"]`` if given, else from the "Available actions:" list in the
    last user message (the env's ``info["messages"]``). The search placeholder becomes a search for 1-4 random
    words of the last observation. Each draw is seeded by (seed, task, episode seed, turn), so results do not depend
    on batch order.
    """

    name = "webshop-random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            ctx = r.context or {}
            actions = ctx.get("valid_actions") or parse_available_actions(r.messages)
            if not actions:
                out.append(Generation(text="", finish_reason="error", error=(
                    "RandomPolicy found no valid actions: pass context['valid_actions'] or keep the env's "
                    "list_actions_in_messages=True")))
                continue
            rng = random.Random(f"{self.seed}|{ctx.get('task_index')}|{ctx.get('seed')}|{len(r.messages)}")
            action = rng.choice(actions)
            if action == SEARCH_PLACEHOLDER:
                last = next((m.get("content") or "" for m in reversed(r.messages) if m.get("role") == "user"), "")
                obs = last.split(_ACTIONS_HEADER)[0]
                words = [w for w in re.findall(r"[a-z0-9]+", obs.lower()) if w not in ("sep", "search")] or ["item"]
                action = f"search[{' '.join(rng.sample(words, k=min(len(words), rng.randint(1, 4))))}]"
            out.append(Generation(text=action))
        return out


# ----------------------------------------------------------------------------------------------- evaluation
def run_episode(env, policy, task_index: int, seed: int | None = None) -> dict:
    """One episode of `policy` on `env` (a WebShopEnv) with a plain loop; returns reward, success, turns."""

    _, info = env.reset(seed=seed, options={"task_index": task_index})
    env_id = "hero_gym/WebShopHuman-v0" if env.goal_kind == "human" else "hero_gym/WebShop-v0"
    ctx = {"env_id": env_id, "task_index": task_index, "split": env.split, "seed": seed}
    reward, terminated, truncated, turns = 0.0, False, False, 0
    while not (terminated or truncated):
        gen = policy.generate([ChatRequest(messages=info["messages"], context=ctx)])[0]
        if gen.error:
            raise RuntimeError(gen.error)
        _, reward, terminated, truncated, info = env.step(gen.text)
        turns += 1
    return {"reward": reward, "success": bool(info["success"]), "turns": turns,
            "reason": info["termination_reason"], "reward_info": info.get("reward_info")}


def main(argv: list[str] | None = None) -> None:
    """Score the oracle (or random policy) over a split and print a markdown summary."""
    from .env import WebShopEnv

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--goals", default="synthetic", choices=["synthetic", "human"])
    ap.add_argument("--split", default="test")
    ap.add_argument("--policy", default="oracle", choices=["oracle", "random"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-turns", type=int, default=15)
    args = ap.parse_args(argv)
    env = WebShopEnv(goals=args.goals, split=args.split, max_turns=args.max_turns)
    policy = OraclePolicy() if args.policy == "oracle" else RandomPolicy(seed=0)
    n = env.num_tasks if args.limit is None else min(args.limit, env.num_tasks)
    t0, rows, hows = time.perf_counter(), [], {}
    for i in range(n):
        rows.append(run_episode(env, policy, i, seed=i))
        if args.policy == "oracle":
            how = policy.plan(env.goal)[1]
            hows[how] = hows.get(how, 0) + 1
    dt = time.perf_counter() - t0
    mean = sum(r["reward"] for r in rows) / n
    succ = sum(r["success"] for r in rows) / n
    print("| goals | split | policy | episodes | mean reward | success rate | mean turns | found via | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.goals} | {args.split} | {args.policy} | {n} | {mean:.4f} | {succ:.4f} | "
          f"{sum(r['turns'] for r in rows) / n:.2f} | {hows or '-'} | {dt:.1f} s |")
    fails = [(i, r["reward"], r["reward_info"]) for i, r in enumerate(rows) if not r["success"]]
    for i, rew, ri in fails[:10]:
        print(f"- task {i}: reward {rew:.3f} {ri}")


if __name__ == "__main__":
    main()
