"""The WebShop Gymnasium environment (text modes), on top of the page state machine in :mod:`pages`."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence
from typing import Any

from hero_gym.env import EnvArgumentError, TerminationReason, TextEnv

from .pages import Session, Shop

OBSERVATION_MODES = ("text", "text_rich")
GOAL_KINDS = ("synthetic", "human")
SEARCH_PLACEHOLDER = "search[<query>]"
# Longer actions are invalid (upstream has no limit); the same default as the tau envs.
DEFAULT_MAX_ACTION_CHARS = 20_000

# An action verb inside a longer message: lower case, not glued to a preceding letter.
_VERB = re.compile(r"(?<![A-Za-z])(search|click)\[")

_cache_lock = threading.Lock()
_shops: dict[tuple, Shop] = {}
_goals: dict[tuple, Sequence[dict]] = {}


def _paths_key(paths: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in paths.items() if v is not None))


def get_shop(setting: str = "1k", seed: int = 0, show_attrs: bool = False, draws=None, **paths) -> Shop:
    """The shop (catalogue + search engine + reward) for a setting, built once per process and shared.

    ``paths`` (items_path, attrs_path, human_ins_path, cache_dir) go to :func:`catalogue.load_catalogue`, e.g.
    for the full catalogue or a synthetic one. ``draws`` (see :class:`draws.RecordedDraws`) replaces the seeded
    prices of ranged products by recorded ones.
    """
    from .draws import RecordedDraws

    draws = RecordedDraws.coerce(draws)
    key = (setting, seed, bool(show_attrs), _paths_key(paths), draws and draws.fingerprint)
    with _cache_lock:
        shop = _shops.get(key)
        if shop is None:
            from .catalogue import load_catalogue
            from .reward import get_reward
            from .search import search_engine_for

            catalogue = load_catalogue(setting=setting, seed=seed, **{k: v for k, v in paths.items() if v})
            engine = search_engine_for(catalogue)  # prices do not change the index: one engine per catalogue
            if draws is not None:
                catalogue = draws.apply(catalogue)
            shop = Shop(catalogue, engine, get_reward, show_attrs=show_attrs)
            _shops[key] = shop
        return shop


def get_goals(kind: str = "synthetic", setting: str = "1k", seed: int = 0, draws=None, **paths) -> Sequence[dict]:
    """All goals of a kind in upstream order (after the seed-233 shuffle), loaded once per process: a read-only
    sequence (:class:`goal_table.GoalTable`) that makes each goal dict on access."""
    from .draws import RecordedDraws

    if kind not in GOAL_KINDS:
        raise ValueError(f"goals must be one of {GOAL_KINDS}, got {kind!r}")
    draws = RecordedDraws.coerce(draws)
    key = (kind, setting, seed, _paths_key(paths), draws and draws.fingerprint)
    goals = _goals.get(key)
    if goals is None:
        from .goals import goal_table

        catalogue = get_shop(setting, seed, **paths).catalogue  # the seeded catalogue: draws applies its prices
        with _cache_lock:
            goals = _goals.get(key)
            if goals is None:
                goals = _goals[key] = goal_table(catalogue, kind, seed, draws)
    return goals


def task_goal_indices(kind: str, split: str, setting: str = "1k", seed: int = 0, draws=None, **paths) -> list[int]:
    """Indices into :func:`get_goals` that make up a split."""
    from .goals import split_indices

    return list(split_indices(kind, split, len(get_goals(kind, setting, seed, draws, **paths))))


def get_task_goal(kind: str, split: str, task_index: int, setting: str = "1k", seed: int = 0, draws=None,
                  **paths) -> dict:
    """The goal dict of task `task_index` of a split (what an oracle needs to know about an episode)."""
    idx = task_goal_indices(kind, split, setting, seed, draws, **paths)
    if not 0 <= task_index < len(idx):
        raise ValueError(f"task_index {task_index} out of range for {kind} split {split!r} ({len(idx)} tasks)")
    return get_goals(kind, setting, seed, draws, **paths)[idx[task_index]]


def _upstream_match(text: str) -> tuple[str, str] | None:
    """What upstream's ``re.match(r"(.+)\\[(.+)\\]", text)`` returns as (name, arg), in linear time.

    The regex backtracks quadratically on long bracket-heavy strings; its result is simple to state: on the first
    line, name = everything before the last "[" (at position >= 1) that still has a "]" at least two characters
    later, arg = everything between that "[" and the last "]" of the line.
    """
    line = text.split("\n", 1)[0]
    close = line.rfind("]")
    if close < 2:
        return None
    open_ = line.rfind("[", 1, close - 1)
    if open_ < 1:
        return None
    return line[:open_], line[open_ + 1:close]


def _last_embedded(text: str) -> tuple[str, str] | None:
    """The last ``search[arg]``/``click[arg]`` in `text` (arg non-empty, one line, no "]"), in linear time.

    Matches end at a "]", so the text is scanned segment by segment from the right, each segment being what lies
    between two "]" (and after the last newline before the closing one); in a segment the leftmost verb wins.
    """
    close = text.rfind("]")
    while close >= 0:
        prev = text.rfind("]", 0, close)
        # Only look for the newline inside this segment: searching back to the start of the text for every "]"
        # made a long run of "]" quadratic (a 1 MB action took seconds).
        newline = text.rfind("\n", prev + 1, close)
        start = newline + 1 if newline >= 0 else prev + 1
        m = _VERB.search(text, start, close)
        if m is not None and m.end() < close:
            return m.group(1), text[m.end():close]
        close = prev
    return None


def parse_action(text: str) -> tuple[str | None, str | None, bool]:
    """Find the action in an agent message: (verb, argument, embedded).

    A message that starts with ``name[arg]`` is read exactly as upstream does (``search[a b]`` → ("search", "a b")).
    Otherwise the LAST ``search[...]``/``click[...]`` anywhere in the message is taken (``embedded=True``), so a
    reply like ``Thought: ... Action: click[Buy Now]`` works. Verbs are case-sensitive as upstream
    (``Search[x]`` is not an action). Returns (None, None, False) when nothing action-shaped is found.
    """
    m = _upstream_match(text)
    if m is not None and m[0] in ("search", "click"):
        return m[0], m[1], False
    m = _last_embedded(text)
    if m is not None:
        return m[0], m[1], True
    return None, None, False


def _why_no_action(text: str) -> str:
    """A helpful reason for a message in which :func:`parse_action` found nothing."""
    if re.search(r"(?i)(?<![a-z])(search|click)\[", text):
        if re.search(r"(?<![A-Za-z])(search|click)\[\]", text):
            return "empty argument: write search[keywords] or click[element] with something inside the brackets"
        if not re.search(r"(?<![A-Za-z])(search|click)\[", text):
            return "the verb must be lower case: search[...] or click[...]"
        return "malformed action: the argument must be on one line and must not contain ']'"
    m = _upstream_match(text)
    if m is not None:
        return f"unknown action {m[0].strip()[:40]!r}: the only actions are search[...] and click[...]"
    return "no action found: reply with search[keywords] or click[element]"


DEFAULT_SYSTEM_PROMPT = """\
You are shopping in WebShop, a simulated online store. The instruction shown on every page describes one product \
to buy: find it, choose the options it asks for (such as size or color) and buy it within the stated price limit.

Each turn you see the current web page as text, with fields separated by " [SEP] ". Reply with one action:
- search[keywords] to search the store (from the search page), e.g. search[red cotton t-shirt];
- click[element] to click a button, a product ID or an option value shown on the page, e.g. click[B07ABC1234], \
click[large], click[Next >], click[< Prev], click[Back to Search], click[Description], click[Buy Now].
Element names are matched without regard to case. Clicking an option value selects it; clicking Buy Now purchases \
the product shown with the selected options and ends the episode, and you are scored on how well the purchase \
matches the instruction. You have at most {max_turns} actions. You may reason before acting: the last action \
written in your reply is the one taken."""


class WebShopEnv(TextEnv):
    """WebShop: buy the product an instruction describes in a simulated web shop, by searching and clicking.

    ## Description
    A text-mode reimplementation of princeton-nlp/WebShop (Yao et al., 2022) over its 1,000-product catalogue.
    Pages (search, results, item, Description/Features/Reviews/Attributes, done), their text observations and the
    navigation quirks follow upstream; search is BM25 in process (see :mod:`search`) and the reward is upstream's
    (see :mod:`reward`). No HTML is rendered.

    ## Action Space
    Any string (:class:`hero_gym.env.AnyText`). ``search[keywords]`` or ``click[element]``, case of the verb as
    upstream (lower case), the argument is lower-cased. A message that does not start with an action may contain
    one: the last ``search[...]``/``click[...]`` in it is taken (see :func:`parse_action`).
    Upstream semantics for other actions: the page does not change and the reward is 0. Here the step also sets
    ``info["invalid"] = True`` and ``info["invalid_reason"]``. Search is accepted on every page (upstream quirk),
    a click only on an element of the current page (``info["available_actions"]["clickables"]``), never on the
    "search" button. ``info["valid_actions"]`` lists the actions as strings (``search[<query>]`` when the page
    has a search bar, then ``click[...]`` for every clickable element). An action longer than ``max_action_chars``
    (20,000 by default) is invalid whatever it holds, and is kept truncated in ``info["messages"]``.

    ## Observation Space
    Any string. ``observation_mode="text"``: the page's text fields joined by " [SEP] "; the search page starts
    with "WebShop [SEP] Instruction: [SEP] <instruction>", other pages with "Instruction: [SEP] <instruction>",
    the done page with "Thank you for shopping with us!" and includes the block hidden by CSS upstream.
    ``"text_rich"``: one field per line, buttons as ``[button] X [button_]``, option values indented, chosen ones
    ``[clicked button] X [clicked button_]`` with "You have clicked X." lines first, visited products marked.

    ## Rewards
    0 on every step but Buy Now; on Buy Now upstream's score in [0, 1]: (matched goal attributes + matched goal
    options + price within bound) / (their count), times a product-type factor. ``info["reward_info"]`` has the
    components. Success means reward 1.0.

    ## Episode End
    Terminated when the agent clicks Buy Now (``termination_reason="purchase"``). Truncated when the turn budget
    runs out (reward 0, ``termination_reason="turn_budget"``).

    ## Turn Budget
    ``max_turns`` actions (default 15, ReAct's WebShop cap). Upstream has no limit inside the env.

    ## Termination Reasons
    ``purchase`` (any reward; ``info["success"]`` tells reward == 1.0), ``turn_budget``.

    ## Arguments
    goals: "synthetic" (6,910 generated goals on the 1k catalogue) or "human" (human-written goals).
    split: a split of :func:`goals.split_indices` (synthetic: test = goals 0-499, train = 500+, all).
    max_turns: turn budget. task_index: fixed task for every reset (else ``reset(options={"task_index": i})`` or a
    seeded draw). observation_mode: "text" or "text_rich". setting: catalogue setting ("1k"). seed: upstream's
    ``random.seed``: the prices of ranged products and then the goal price bounds are drawn from one stream, as
    upstream draws them (see :mod:`goals`). draws: prices and bounds recorded from an upstream run
    (:class:`draws.RecordedDraws`, a ``{"prices", "bounds"}`` mapping or a JSON file path) instead of ``seed``.
    render_mode: None or "ansi". show_attrs: show the Attributes button (upstream
    default False). list_actions_in_messages: append the valid actions to each observation in
    ``info["messages"]`` (never to the observation itself). system_prompt: replaces the default system prompt
    (``{max_turns}`` is filled in). max_action_chars: longer actions are invalid, with
    ``info["invalid_reason"]`` saying so (default 20,000; upstream has no limit). items_path / attrs_path /
    human_ins_path / cache_dir: catalogue files for ``setting="full"`` or a custom catalogue, and where its
    prepared form is cached (see :func:`catalogue.load_catalogue`).

    ## Version History
    v0: first version (upstream text env semantics, BM25 search, deterministic goal price bounds).
    v0, 2026-11: goal price bounds continue the seeded price stream (reproducing upstream under
    ``random.seed(seed)``) instead of a fresh ``random.Random(seed)``: same goals and order, other bounds (and so
    other "price lower than" texts and price rewards) than results recorded before; ``draws`` and
    ``max_action_chars`` added.
    """

    default_max_turns = 15

    def __init__(self, goals: str = "synthetic", split: str = "test", max_turns: int | None = 15,
                 task_index: int | None = None, observation_mode: str = "text", setting: str = "1k", seed: int = 0,
                 render_mode: str | None = None, show_attrs: bool = False, list_actions_in_messages: bool = True,
                 system_prompt: str | None = None, items_path=None, attrs_path=None, human_ins_path=None,
                 cache_dir=None, draws=None, max_action_chars: int = DEFAULT_MAX_ACTION_CHARS):
        if goals not in GOAL_KINDS:
            raise ValueError(f"goals must be one of {GOAL_KINDS}, got {goals!r}")
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode must be one of {OBSERVATION_MODES}, got {observation_mode!r}")
        if isinstance(max_action_chars, bool) or not isinstance(max_action_chars, int) or max_action_chars < 1:
            raise EnvArgumentError(f"max_action_chars must be a positive integer, got {max_action_chars!r}")
        self.max_action_chars = max_action_chars
        self.goal_kind, self.split, self.setting, self.seed = goals, split, setting, seed
        self.observation_mode = observation_mode
        self.list_actions_in_messages = bool(list_actions_in_messages)
        self._system_template = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        paths = {"items_path": items_path, "attrs_path": attrs_path, "human_ins_path": human_ins_path,
                 "cache_dir": cache_dir}
        from .draws import RecordedDraws

        self.draws = RecordedDraws.coerce(draws)
        self.shop = get_shop(setting, seed, show_attrs, self.draws, **paths)
        self._all_goals = get_goals(goals, setting, seed, self.draws, **paths)
        self._indices = task_goal_indices(goals, split, setting, seed, self.draws, **paths)
        if not self._indices:
            raise ValueError(f"split {split!r} of the {goals} goals is empty for setting {setting!r}")
        super().__init__(max_turns=max_turns, task_index=task_index, render_mode=render_mode)
        self._session: Session | None = None
        self._rng = random.Random(0)
        self._messages: list[dict] = []

    # ----- TextEnv hooks ---------------------------------------------------------------------------------------
    def _num_tasks(self) -> int:
        return len(self._indices)

    def _task_id(self, task_index: int) -> str:
        return f"{self.goal_kind}-{self._indices[task_index]}"

    @property
    def goal(self) -> dict | None:
        """The current episode's goal (privileged: for oracles and analysis, never for the agent's prompt)."""
        return None if self._session is None else self._session.goal

    def _reset_task(self, task_index: int) -> tuple[str, dict]:
        goal = self._all_goals[self._indices[task_index]]
        self._session = Session(instruction=goal["instruction_text"], goal=goal)
        # Only the `<r>` search draws randomness; seed it from the env's generator so episodes replay exactly.
        self._rng = random.Random(int(self.np_random.integers(2**63)))
        obs = self.shop.render(self._session, self.observation_mode)
        available = self.shop.available_actions(self._session)
        try:
            system = self._system_template.format(max_turns=self.max_turns)
        except (KeyError, IndexError, ValueError):  # a custom prompt with other braces is used verbatim
            system = self._system_template
        self._messages = [{"role": "system", "content": system},
                          {"role": "user", "content": self._user_message(obs, available)}]
        return obs, self._extra(available)

    def _step_turn(self, action: str) -> tuple[str, float, bool, str | None, dict]:
        s = self._session
        available = self.shop.available_actions(s)
        reason = None
        reward, done = 0.0, False
        if len(action) > self.max_action_chars:
            verb, arg, embedded = None, None, False
            reason = (f"action is {len(action)} characters long; the limit is {self.max_action_chars}: "
                      "reply with one short search[...] or click[...]")
            action = action[:self.max_action_chars]  # what the conversation keeps of it
        else:
            verb, arg, embedded = parse_action(action)
        if verb is None:
            reason = reason or _why_no_action(action)
        else:
            arg = arg.lower()
            if verb == "search":
                self.shop.search(s, arg, self._rng)
            elif arg == "search" or arg not in available["clickables"]:
                options = [c for c in available["clickables"] if c != "search"]
                shown = ", ".join(options[:30]) + (f", ... ({len(options)} in all)" if len(options) > 30 else "")
                shown = shown or "none"
                reason = f"{arg!r} cannot be clicked on this page; clickable: {shown}"
            else:
                reward, done = self.shop.click(s, arg, self._rng)
        obs = self.shop.render(s, self.observation_mode)
        available = self.shop.available_actions(s)
        self._messages.append({"role": "assistant", "content": action})
        self._messages.append({"role": "user", "content": self._user_message(obs, available)})
        extra = self._extra(available)
        extra["action"] = None if verb is None else f"{verb}[{arg}]"
        extra["action_embedded"] = embedded
        if reason is not None:
            extra["invalid"] = True
            extra["invalid_reason"] = reason
        if done:
            extra["reward_info"] = s.reward_info
            extra["purchased"] = {"asin": s.asin, "options": dict(s.options)}
            return obs, reward, True, TerminationReason.PURCHASE.value, extra
        return obs, 0.0, False, None, extra

    # ----- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def valid_actions(available: dict) -> list[str]:
        """Action strings for an ``available_actions`` dict (the search placeholder first when there is a bar)."""
        acts = [SEARCH_PLACEHOLDER] if available["has_search_bar"] else []
        return acts + [f"click[{c}]" for c in available["clickables"] if c != "search"]

    def _user_message(self, obs: str, available: dict) -> str:
        actions = self.valid_actions(available)
        if not self.list_actions_in_messages or not actions:  # the done page has none
            return obs
        lines = "\n".join(f"- {a}" for a in actions)
        return f"{obs}\n\nAvailable actions:\n{lines}"

    def _extra(self, available: dict) -> dict[str, Any]:
        s = self._session
        return {
            "instruction": s.instruction,
            "page": s.page,
            "available_actions": available,
            "valid_actions": self.valid_actions(available),
            "messages": list(self._messages),
            "tools": None,
            "goal_index": self._indices[self._task_index] if self._task_index is not None else None,
        }
