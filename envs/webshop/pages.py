"""WebShop's web pages as a state machine, rendered straight to text (no HTML, no BeautifulSoup).

The original environment renders Jinja templates to HTML, then parses the HTML back with BeautifulSoup to get the
text observation and the clickable elements. That round trip costs tens of milliseconds per step. Here every page
is built directly as the ordered list of text nodes the parser would have found (:class:`Node`), and the two text
observation modes are joins over that list. The node lists follow the upstream templates (princeton-nlp/WebShop
@ 64fa2a5) fact by fact:

* search page: "WebShop", "Instruction: ", the instruction, the "Search" button (plus the search bar);
* results page: "Instruction:", instruction, "Back to Search", "Page N (Total results: T)", "< Prev" (N > 1),
  "Next >" (always, unbounded), then per product its ASIN link, title and price tag, 10 per page;
* item page: "Instruction:", instruction, "Back to Search", "< Prev", each option name followed by its values,
  title, "Price: …", "Rating: …", Description / Features / Reviews (/ Attributes), "Buy Now";
* sub-pages: "Instruction:", instruction, "Back to Search", "< Prev", then the page's content;
* done page: the purchase summary including the block the site hides with CSS (text extraction ignores CSS).

Whitespace follows the parser too: an empty value produces no node; a whitespace-only value becomes a dropped
newline node if it holds a newline, else a single space (kept, so ``text`` mode shows an empty ``[SEP]`` field).

Navigation mirrors the upstream server: search works on every page; ``< Prev`` on a sub-page returns to the item
page with the chosen options; ``< Prev`` on an item page returns to the results page (options cleared); ``Back to
Search`` clears keywords, page, item, options and visited items. One deliberate difference: the page kind is kept
as state instead of being re-derived from substrings of the URL (upstream misroutes if a search keyword contains
e.g. ``search_results``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

SEARCH_RETURN_N = 50  # hits kept per query
PRODUCT_WINDOW = 10  # products per results page

BACK_TO_SEARCH = "Back to Search"
PREV_PAGE = "< Prev"
NEXT_PAGE = "Next >"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews", "Attributes")

# Page kinds.
START, RESULTS, ITEM, SUB, DONE = "start", "results", "item", "sub", "done"

_ASCII_SPACES = "\x20\x0a\x09\x0c\x0d"


@dataclass(frozen=True)
class Node:
    """One text node of a page. `kind` is "text", "button", "label" (an option value) or "link" (a product ASIN)."""

    text: str
    kind: str = "text"


@dataclass
class Session:
    """Everything one shopping session remembers (the upstream server's per-session dict)."""

    instruction: str
    goal: dict | None = None
    page: str = START
    keywords: list[str] | None = None
    page_num: int | None = None
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    sub_page: str | None = None
    hits: list[str] = field(default_factory=list)
    hits_key: tuple | None = None
    reward: float | None = None
    reward_info: dict | None = None


def _add(nodes: list[Node], value: Any, kind: str = "text") -> None:
    """Append `value` as the parser would see it (see the module docstring for the whitespace rules)."""
    text = value if isinstance(value, str) else str(value)
    if text == "":
        return
    if text.strip(_ASCII_SPACES) == "":
        if "\n" in text:
            return
        text = " "
    nodes.append(Node(text, kind))


class Shop:
    """The simulated web shop: page transitions, clickables and rendering over one catalogue and search engine.

    catalogue: has ``products`` (list of product dicts in upstream post-load form: asin, Title, Price, Rating,
        options, Description, BulletPoints, Reviews, Attributes, category, query, product_category), ``by_asin``
        and ``prices`` (asin -> price the reward uses).
    search: ``search(query, k) -> list[asin]``.
    reward_fn: ``reward_fn(product, goal, price, options) -> (reward, info)``, called on Buy Now.
    show_attrs: show the Attributes sub-page button (upstream default False).
    """

    def __init__(self, catalogue, search, reward_fn: Callable, *, show_attrs: bool = False):
        self.catalogue = catalogue
        self.search_engine = search
        self.reward_fn = reward_fn
        self.show_attrs = bool(show_attrs)

    # ----- search -------------------------------------------------------------------------------------------
    def top_products(self, keywords: list[str], rng: random.Random) -> list[str]:
        """ASINs for the keywords, including the site's special first tokens ``<r>``, ``<a>``, ``<c>``, ``<q>``."""
        products = self.catalogue.products
        head = keywords[0] if keywords else ""
        if head == "<r>":
            return [p["asin"] for p in rng.sample(products, k=min(SEARCH_RETURN_N, len(products)))]
        if head == "<a>":
            # Upstream crashes here in the text env (no attribute index is passed); we filter as the site intended.
            attr = " ".join(keywords[1:]).strip()
            return [p["asin"] for p in products if attr in p.get("Attributes", ())]
        if head == "<c>":
            cat = keywords[1].strip() if len(keywords) > 1 else ""
            return [p["asin"] for p in products if p.get("category") == cat]
        if head == "<q>":
            query = " ".join(keywords[1:]).strip()
            return [p["asin"] for p in products if p.get("query") == query]
        hits = self.search_engine.search(" ".join(keywords), k=SEARCH_RETURN_N)
        return [a for a in hits if a in self.catalogue.by_asin]

    def _show_results(self, s: Session, keywords: list[str], page_num: int, rng: random.Random) -> None:
        key = tuple(keywords)
        # Next/Prev re-run the query upstream; the result is the same except for the random `<r>` listing.
        if s.hits_key != key or (keywords and keywords[0] == "<r>"):
            s.hits = self.top_products(keywords, rng)
            s.hits_key = key
        s.page, s.keywords, s.page_num = RESULTS, keywords, page_num
        s.asin, s.options, s.sub_page = None, {}, None

    # ----- actions ----------------------------------------------------------------------------------------------
    def reset(self, s: Session) -> None:
        """Back to the start page; keeps the instruction (the goal)."""
        s.page, s.keywords, s.page_num, s.asin, s.sub_page = START, None, None, None, None
        s.options, s.visited = {}, set()

    def available_actions(self, s: Session) -> dict:
        """``{"has_search_bar": bool, "clickables": [...]}`` in upstream order: buttons and product links
        (lowercased), then option values."""
        clickables = [n.text.lower() for n in self._nodes(s) if n.kind in ("button", "link")]
        if s.page == ITEM:
            for values in self.catalogue.by_asin[s.asin].get("options", {}).values():
                clickables.extend(values)
        return {"has_search_bar": s.page == START, "clickables": list(dict.fromkeys(clickables))}

    def search(self, s: Session, query: str, rng: random.Random) -> None:
        """Run a search from any page (upstream quirk). `query` is already lowercased; it splits on single spaces."""
        self._show_results(s, query.split(" "), 1, rng)

    def click(self, s: Session, name: str, rng: random.Random) -> tuple[float, bool]:
        """Click clickable `name` (must be in ``available_actions``). Returns (reward, done)."""
        if name == BUY_NOW.lower():
            return self._buy(s)
        if name == BACK_TO_SEARCH.lower():
            self.reset(s)
        elif name == NEXT_PAGE.lower() and s.page == RESULTS:
            self._show_results(s, s.keywords, s.page_num + 1, rng)
        elif name == PREV_PAGE.lower() and s.page == RESULTS:
            self._show_results(s, s.keywords, s.page_num - 1, rng)
        elif name == PREV_PAGE.lower() and s.page == SUB:
            s.page, s.sub_page = ITEM, None
        elif name == PREV_PAGE.lower() and s.page == ITEM:
            self._show_results(s, s.keywords, s.page_num, rng)
        elif name in (p.lower() for p in SUB_PAGES):
            s.page, s.sub_page = SUB, next(p for p in SUB_PAGES if p.lower() == name)
        elif s.page == RESULTS:  # a product link, one of this page's (a map of all 1.18M would cost startup time)
            start = (s.page_num - 1) * PRODUCT_WINDOW
            s.asin = next(a for a in s.hits[start:start + PRODUCT_WINDOW] if a.lower() == name)
            s.visited.add(s.asin)
            s.page = ITEM
        else:  # an option value on the item page: remember it under its option's name
            for opt_name, values in self.catalogue.by_asin[s.asin].get("options", {}).items():
                if name in values:
                    option_key = opt_name
            s.options[option_key] = name
            s.page = ITEM
        return 0.0, False

    def _buy(self, s: Session) -> tuple[float, bool]:
        product = self.catalogue.by_asin[s.asin]
        reward, info = self.reward_fn(product, s.goal, self.catalogue.prices.get(s.asin), dict(s.options))
        s.reward, s.reward_info, s.page = float(reward), info, DONE
        return s.reward, True

    # ----- rendering --------------------------------------------------------------------------------------------
    def _nodes(self, s: Session) -> list[Node]:
        nodes: list[Node] = []
        if s.page == START:
            _add(nodes, "WebShop")
            _add(nodes, "Instruction: ")
            _add(nodes, s.instruction)
            _add(nodes, "Search", "button")
            return nodes
        if s.page == DONE:
            return self._done_nodes(s)
        _add(nodes, "Instruction:")
        _add(nodes, s.instruction)
        _add(nodes, BACK_TO_SEARCH, "button")
        if s.page == RESULTS:
            _add(nodes, f"Page {s.page_num} (Total results: {len(s.hits)})")
            if s.page_num > 1:
                _add(nodes, PREV_PAGE, "button")
            _add(nodes, NEXT_PAGE, "button")
            # Python slicing: a page number below 1 (not reachable by clicks) would still slice like upstream.
            start = (s.page_num - 1) * PRODUCT_WINDOW
            for asin in s.hits[start : s.page_num * PRODUCT_WINDOW]:
                p = self.catalogue.by_asin[asin]
                _add(nodes, p["asin"], "link")
                _add(nodes, p.get("Title", ""))
                _add(nodes, p.get("Price", ""))
            return nodes
        _add(nodes, PREV_PAGE, "button")
        p = self.catalogue.by_asin[s.asin]
        if s.page == ITEM:
            for opt_name, values in p.get("options", {}).items():
                _add(nodes, opt_name)
                for v in values:
                    _add(nodes, v, "label")
            _add(nodes, p.get("Title", ""))
            _add(nodes, f"Price: {p.get('Price', '')}")
            _add(nodes, f"Rating: {p.get('Rating', 'N.A.')}")
            for sub in SUB_PAGES if self.show_attrs else SUB_PAGES[:3]:
                _add(nodes, sub, "button")
            _add(nodes, BUY_NOW, "button")
        elif s.sub_page == "Description":
            _add(nodes, p.get("Description", ""))
        elif s.sub_page == "Features":
            for b in p.get("BulletPoints", []):
                _add(nodes, f" {b}")
        elif s.sub_page == "Reviews":
            for r in p.get("Reviews", []):
                _add(nodes, f'"{r.get("title", "")}"')
                _add(nodes, r.get("score", ""))
                _add(nodes, r.get("body", ""))
        else:  # Attributes
            for a in p.get("Attributes", []):
                _add(nodes, f" {a}")
            for key in ("category", "query", "product_category"):
                _add(nodes, p.get(key, ""))
        return nodes

    def _done_nodes(self, s: Session) -> list[Node]:
        # The text env passes only asin, options and reward to the done template; every other field renders as
        # "None" (plain variables) or nothing (attributes of the missing goal).
        nodes: list[Node] = []
        for t in ("Thank you for shopping with us!", "Your code: ", "None", " (Paste it in your MTurk interface.)",
                  "Purchased", "asin", s.asin, "options", _tojson(s.options), "attrs", "None", "category", "None",
                  "query", "None", "product category", "None", "Target", "asin", "options", "attrs", "price upper",
                  "instuction text", "category", "product category", "query", "Goal ", "None", "Reward",
                  "Your score (min 0.0, max 1.0)", str(s.reward), "Reward Details ", "None"):
            _add(nodes, t)
        return nodes

    def render(self, s: Session, mode: str = "text") -> str:
        """The observation of the current page in ``text`` or ``text_rich`` mode (upstream formats)."""
        nodes = self._nodes(s)
        if mode == "text":
            return " [SEP] ".join(n.text.strip() for n in nodes)
        if mode == "text_rich":
            return self._rich(s, nodes)
        raise ValueError(f"unknown observation mode {mode!r}; use 'text' or 'text_rich'")

    def _rich(self, s: Session, nodes: list[Node]) -> str:
        # Upstream marks an option as clicked when '"value"' occurs in the item page URL, which holds the
        # keywords joined by '+' and json.dumps(options); the rest of the URL cannot contain a quote.
        url = "+".join(s.keywords or []) + "/" + json.dumps(s.options) if s.page == ITEM else ""
        prefix, lines = "", []
        for n in nodes:
            if n.kind == "button":
                lines.append(f"[button] {n.text} [button_]")
            elif n.kind == "label":
                if f'"{n.text}"' in url:
                    lines.append(f"  [clicked button] {n.text} [clicked button_]")
                    prefix = f"You have clicked {n.text}.\n" + prefix
                else:
                    lines.append(f"  [button] {n.text} [button_]")
            elif n.kind == "link":
                mark = "clicked button" if n.text in s.visited else "button"
                lines.append(f"\n[{mark}] {n.text} [{mark}_]")
            else:
                lines.append(n.text)
        return prefix + "".join(line + "\n" for line in lines)


def _tojson(obj: Any) -> str:
    """Flask's `tojson` filter: sorted keys, ASCII, and <, >, &, ' escaped for HTML."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")
