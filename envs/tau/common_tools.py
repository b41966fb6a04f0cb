"""Pieces the retail and airline TauBench tool tables share: the error convention, `calculate`, `think`,
`transfer_to_human_agents`, the tau2 key folding, the loading of the v1 tool schemas (the tau2 schemas are
package data, in ``tau2_schemas.py``) and the per-domain ``tools(version)`` / ``schemas(version)`` / lazy
``TOOLS_TAU2`` accessors (:func:`version_accessors`).

Error convention: a tool body raises :class:`ToolError` for a domain error ("order not found"); the :func:`tool`
decorator turns it into the observation string ``"Error: <message>"`` that upstream returns (v1) or that upstream's
environment makes of the raised exception (tau2). Any other exception (a ``KeyError`` on a dangling reference, say)
is left to propagate, because the env turns it into ``f"Error: {e}"`` exactly as upstream's ``Env.step`` does.
"""

from __future__ import annotations

import ast
import functools
import importlib
import math
import operator
import unicodedata
from collections.abc import Callable
from typing import Any

from hero_gym.data import load_json
from hero_gym.envs.tau import tau2_schemas

Tool = Callable[..., str]


class ToolError(Exception):
    """A domain error a tool reports to the agent as ``"Error: <message>"``."""


def tool(fn: Tool) -> Tool:
    """Wrap a tool body so that a :class:`ToolError` becomes its ``"Error: ..."`` observation."""

    @functools.wraps(fn)
    def wrapper(db: Any, **kwargs: Any) -> str:
        try:
            return fn(db, **kwargs)
        except ToolError as e:
            return f"Error: {e}"

    return wrapper


# --------------------------------------------------------------------------------------------------- calculate
# Upstream checks the characters, then eval()s the text with no builtins and answers str(round(float(value), 2)).
# With only these characters eval can still reach: numbers, + - * / // **, unary signs, parentheses, `()` (an
# empty tuple), `...` (Ellipsis) and calls such as `2(3)`. We parse with Python's own parser (so syntax errors read
# the same) and evaluate that small grammar ourselves; operators run on the same Python values, so every error
# message (division by zero, tuple concatenation, float() of a tuple, ...) is the one eval would give.
CALC_CHARS = frozenset("0123456789+-*/(). ")

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# eval would happily build a gigantic int for 9**9**9 (or a chain of 10**30000 products, quadratic in its
# length) and hang; no intermediate int may pass this size (about 30,000 digits). Such a value almost always ends
# as float()'s OverflowError, so we raise that error up front (a division that would have brought it back into
# float range is the one case where we answer differently from eval).
_MAX_POW_BITS = 100_000
_OVERFLOW = "int too large to convert to float"
# A chain of n operators is n nested nodes, and Python's parser and our evaluator recurse once per node: beyond a
# few hundred the outcome would depend on the caller's stack depth. Real expressions use a handful.
MAX_CALC_OPERATORS = 400
_OPERATOR_CHARS = frozenset("+-*/(")


def _pow(base: Any, exp: Any) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if exp * math.log2(abs(base)) > _MAX_POW_BITS:
            raise OverflowError(_OVERFLOW)
    return operator.pow(base, exp)


def _mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > _MAX_POW_BITS + 1:
        raise OverflowError(_OVERFLOW)
    return operator.mul(left, right)


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and (type(node.value) in (int, float) or node.value is Ellipsis):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow):
            return _pow(left, right)
        if isinstance(node.op, ast.Mult):
            return _mul(left, right)
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand))
    if isinstance(node, ast.Tuple) and not node.elts:  # only `()` is reachable without a comma
        return ()
    if isinstance(node, ast.Call) and not node.keywords:
        func = _eval_node(node.func)
        for arg in node.args:
            _eval_node(arg)
        # every value this grammar can produce (int, float, tuple, Ellipsis) is not callable
        raise TypeError(f"'{type(func).__name__}' object is not callable")
    # The character filter makes this unreachable; refuse rather than guess.
    raise ValueError(f"unsupported expression element {type(node).__name__}")


def evaluate_expression(expression: str) -> str:
    """Value of an arithmetic expression as upstream formats it: ``str(round(float(value), 2))``.

    The caller has checked the characters against :data:`CALC_CHARS`. Raises what eval would raise, except that
    more than :data:`MAX_CALC_OPERATORS` operators and parentheses, or an intermediate integer over about 30,000
    digits, is refused up front (eval would recurse or compute for as long as it likes).
    """
    operators = sum(ch in _OPERATOR_CHARS for ch in expression)
    if operators > MAX_CALC_OPERATORS:
        raise ValueError(f"expression too long: {operators} operators and parentheses (at most {MAX_CALC_OPERATORS})")
    # eval() strips leading spaces of a source string; ast.parse does not.
    tree = ast.parse(expression.lstrip(" "), filename="<string>", mode="eval")
    return str(round(float(_eval_node(tree)), 2))


def make_calculate(invalid_chars_message: str) -> Tool:
    """The `calculate` tool; v1 and tau2 differ only in the capitalisation of the invalid-characters error."""

    @tool
    def calculate(db: Any, expression: str) -> str:
        """Evaluate an arithmetic expression safely and return it rounded to 2 decimals."""
        if not all(ch in CALC_CHARS for ch in expression):
            raise ToolError(invalid_chars_message)
        try:
            return evaluate_expression(expression)
        except Exception as e:  # v1 returns f"Error: {e}"; tau2's env makes the same string of the exception
            raise ToolError(str(e)) from None

    return calculate


calculate_v1 = make_calculate("invalid characters in expression")
calculate_tau2 = make_calculate("Invalid characters in expression")


@tool
def think(db: Any, thought: str) -> str:
    """Log a thought; changes nothing and returns the empty string."""
    return ""


@tool
def transfer_to_human_agents(db: Any, summary: str) -> str:
    """Hand the conversation to a human; the env ends the episode on this tool."""
    return "Transfer successful"


# ------------------------------------------------------------------------------------------------- tau2 helpers
def fold_for_match(text: str) -> str:
    """tau2's tolerant form of a name or id: stripped, accents removed (NFD, combining marks dropped), casefolded."""
    decomposed = unicodedata.normalize("NFD", text.strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def resolve_key_folded(table: Any, key: str) -> str | None:
    """The key of `table` that `key` names, tolerating case, accents and surrounding spaces (tau2 airline)."""
    if key in table:
        return key
    stripped = key.strip()
    if stripped in table:
        return stripped
    folded = fold_for_match(stripped)
    for candidate in table:
        if fold_for_match(candidate) == folded:
            return candidate
    return None


# ------------------------------------------------------------------------------------------------------ schemas
def v1_schemas(domain: str) -> list[dict]:
    """The v1 tool schemas of `domain`, exactly as upstream's get_info() exports them (a fresh copy)."""
    import copy

    return copy.deepcopy(load_json("tau-v1", f"tau/v1/{domain}/tools.json"))


def version_accessors(
    domain: str, module_name: str, v1_tools: dict[str, Tool], tau2_module: str
) -> tuple[Callable[[str], Any], Callable[..., dict[str, Tool]], Callable[..., list[dict]]]:
    """The module ``__getattr__`` (lazy ``TOOLS_TAU2``), ``tools(version)`` and ``schemas(version)`` of a domain's
    v1 tool module `module_name`.

    ``TOOLS_TAU2`` lives in `tau2_module`, which imports helpers from the v1 module; it is imported lazily so that
    there is no import cycle whichever module is imported first.
    """

    def tau2_tools() -> dict[str, Tool]:
        return importlib.import_module(tau2_module).TOOLS_TAU2

    def __getattr__(name: str) -> Any:
        if name == "TOOLS_TAU2":
            return tau2_tools()
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def tools(version: str = "v1") -> dict[str, Tool]:
        """The tool table of a TauBench version ("v1" or "tau2")."""
        if version == "v1":
            return v1_tools
        if version == "tau2":
            return tau2_tools()
        raise ValueError(f"unknown TauBench version {version!r}; expected 'v1' or 'tau2'")

    def schemas(version: str = "v1") -> list[dict]:
        """OpenAI function schemas of the tools of `version`: v1 exactly as upstream exports them (its tools.json);
        tau2 from the package's own ``tau2_schemas.py``, so the tau2 envs need no v1 data file."""
        if version == "v1":
            return v1_schemas(domain)
        if version == "tau2":
            return tau2_schemas.schemas(domain)
        raise ValueError(f"unknown TauBench version {version!r}; expected 'v1' or 'tau2'")

    tools.__module__ = schemas.__module__ = __getattr__.__module__ = module_name
    return __getattr__, tools, schemas
