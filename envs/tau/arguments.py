"""Checking a tool call's arguments against its OpenAI function schema before the tool runs.

Upstream calls ``Tool.invoke(data=..., **kwargs)`` and lets Python reject wrong keywords, so the agent sees
``Error: GetOrderDetails.invoke() got an unexpected keyword argument 'foo'`` or ``... missing 1 required positional
argument: 'order_id'``. We give the same strings (the class name is the tool name in CamelCase, as upstream's
classes are named) without calling anything, and also reject values of the wrong JSON type, which upstream would
pass on to the tool (where they fail somewhere deep, or worse, get stored). All checks are the JSON-schema
keywords the TauBench schemas use: type, enum, items, properties, required.
"""

from __future__ import annotations

from typing import Any

_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def camel_name(tool_name: str) -> str:
    """``get_order_details`` -> ``GetOrderDetails`` (upstream's tool class names)."""
    return "".join(part[:1].upper() + part[1:] for part in tool_name.split("_"))


def _json_type(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "null":
        return value is None
    return True  # a type keyword these schemas never use: do not guess


def _check_value(value: Any, schema: dict, where: str) -> str | None:
    expected = schema.get("type")
    if expected is not None:
        types = expected if isinstance(expected, list) else [expected]
        if not any(_type_ok(value, t) for t in types):
            return f"argument {where} must be of type {' or '.join(types)}, got {_json_type(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"argument {where} must be one of {schema['enum']}, got {value!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            err = _check_value(item, schema["items"], f"{where}[{i}]")
            if err:
                return err
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        for key in schema.get("required", []):
            if key not in value:
                return f"argument {where} is missing the required field '{key}'"
        for key, item in value.items():
            if key in props:
                err = _check_value(item, props[key], f"{where}.{key}")
                if err:
                    return err
    return None


def _quote_list(names: list[str]) -> str:
    # Python's own wording: 'a' / 'a' and 'b' / 'a', 'b', and 'c'
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def check_arguments(tool_name: str, arguments: dict, schema: dict) -> str | None:
    """None when `arguments` fit the function schema, else the error text (without the leading ``Error: ``).

    Order of checks follows what Python reports first for a bad call: an unexpected keyword, then missing
    required arguments, then (our addition) wrong value types.
    """
    params = (schema.get("function", schema)).get("parameters") or {}
    props: dict = params.get("properties") or {}
    required: list = params.get("required") or []
    where = f"{camel_name(tool_name)}.invoke()"
    for key in arguments:
        if key == "data":  # upstream passes the database as `data=`; a second one is a Python TypeError
            return f"{where} got multiple values for keyword argument 'data'"
        if key not in props:
            return f"{where} got an unexpected keyword argument '{key}'"
    missing = [k for k in props if k in required and k not in arguments]
    missing += [k for k in required if k not in props and k not in arguments]
    if missing:
        plural = "argument" if len(missing) == 1 else "arguments"
        return f"{where} missing {len(missing)} required positional {plural}: {_quote_list(missing)}"
    for key, value in arguments.items():
        err = _check_value(value, props[key], f"'{key}'")
        if err:
            return f"{where} {err}"
    return None
