"""hero_gym.actions parsers and the TauBench argument checks (envs/tau/arguments.py)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_gym.actions import (
    Action,
    action_text_from_openai,
    get_parser,
    parse_action,
    parse_hermes,
    parse_json_call,
    parse_react,
)
from hero_gym.envs.tau.arguments import camel_name, check_arguments

ORDER = {"order_id": "#W2378156"}


@pytest.mark.parametrize("key", ["arguments", "kwargs", "parameters"])
def test_json_call_accepts_all_argument_keys(key):
    a = parse_action(json.dumps({"name": "get_order_details", key: ORDER}))
    assert a == Action(kind="tool", name="get_order_details", arguments=ORDER)


def test_json_call_arguments_as_json_string_and_openai_shape_and_fence():
    a = parse_action(json.dumps({"name": "get_order_details", "arguments": json.dumps(ORDER)}))
    assert a.kind == "tool" and a.arguments == ORDER
    b = parse_action(json.dumps({"type": "function", "function": {"name": "x", "arguments": "{}"}}))
    assert b.kind == "tool" and b.name == "x" and b.arguments == {}
    c = parse_action('```json\n{"name": "think", "arguments": {"thought": "hm"}}\n```')
    assert c.kind == "tool" and c.arguments == {"thought": "hm"}
    d = parse_action('{"name": "list_all_product_types"}')
    assert d.kind == "tool" and d.arguments == {}


def test_plain_text_and_non_call_json_are_messages():
    assert parse_action("Hello, how can I help?") == Action.message("Hello, how can I help?")
    assert parse_action('{"price": 3}').kind == "message"
    assert parse_action("{not json at all").kind == "message"
    assert parse_action("").kind == "message"


def test_respond_is_a_message():
    a = parse_action(json.dumps({"name": "respond", "arguments": {"content": "Your order is cancelled."}}))
    assert a == Action.message("Your order is cancelled.")
    assert parse_action(json.dumps({"name": "respond", "arguments": {}})).kind == "invalid"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"name": "get_order_details", "arguments": {"order_id": }', "malformed JSON"),
        ('{"name": 5, "arguments": {}}', "non-empty string"),
        ('{"arguments": {"order_id": "#W1"}}', 'no "name"'),
        ('{"name": "x", "arguments": [1, 2]}', "must be a JSON object"),
        ('{"name": "x", "arguments": "{broken"}', "not valid JSON"),
        ('{"name": "x", "arguments": {}, "kwargs": {}}', "twice"),
    ],
)
def test_broken_calls_are_invalid_with_reason(text, fragment):
    a = parse_action(text)
    assert a.kind == "invalid" and fragment in a.error


def test_hermes_first_call_only_and_thought_kept():
    text = (
        "I will look it up.\n<tool_call>\n" + json.dumps({"name": "get_order_details", "arguments": ORDER})
        + "\n</tool_call>\n<tool_call>\n" + json.dumps({"name": "get_user_details", "arguments": {"user_id": "u"}})
        + "\n</tool_call>"
    )
    a = parse_action(text)
    assert a.kind == "tool" and a.name == "get_order_details" and a.content == "I will look it up."
    # a call cut off before its closing tag still parses
    assert parse_hermes('<tool_call>{"name": "think", "arguments": {"thought": "x"}}').name == "think"


def test_hermes_malformed_json_is_invalid():
    a = parse_action('<tool_call>{"name": "get_order_details", "arguments": {</tool_call>')
    assert a.kind == "invalid" and "malformed JSON inside <tool_call>" in a.error
    assert parse_action("<tool_call>[1, 2]</tool_call>").kind == "invalid"


def test_react_parser_falls_back_to_message_like_upstream():
    a = parse_react('Thought: need the order.\nAction: {"name": "get_order_details", "arguments": {"order_id": "#W1"}}')
    assert a.kind == "tool" and a.arguments == {"order_id": "#W1"} and a.content == "Thought: need the order."
    bad = 'Thought: x\nAction: {"name": broken'
    assert parse_react(bad) == Action.message(bad)
    assert parse_react("just talking").kind == "message"


def test_get_parser_names_and_errors():
    assert get_parser(None) is parse_action and get_parser("json") is parse_json_call
    with pytest.raises(ValueError, match="unknown action parser"):
        get_parser("xml")
    with pytest.raises(TypeError):
        get_parser(42)


def test_openai_message_to_action_text():
    msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_order_details", "arguments": json.dumps(ORDER)}},
            {"id": "c2", "type": "function", "function": {"name": "think", "arguments": "{}"}},
        ],
    }
    a = parse_action(action_text_from_openai(msg))
    assert a.kind == "tool" and a.name == "get_order_details" and a.arguments == ORDER
    assert action_text_from_openai({"role": "assistant", "content": "Hi there"}) == "Hi there"
    broken = {"role": "assistant", "tool_calls": [{"function": {"name": "x", "arguments": "{oops"}}]}
    assert parse_action(action_text_from_openai(broken)).kind == "invalid"
    with pytest.raises(TypeError):
        action_text_from_openai("not a dict")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parsers_never_raise(text):
    for parser in ("auto", "json", "hermes", "react"):
        a = get_parser(parser)(text)
        assert a.kind in ("tool", "message", "invalid")
        if a.kind == "tool":
            assert isinstance(a.name, str) and isinstance(a.arguments, dict)


# ------------------------------------------------------------------------------------------------ argument checks
SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_order_details",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def test_camel_names_match_upstream_classes():
    assert camel_name("get_order_details") == "GetOrderDetails"
    assert camel_name("find_user_id_by_name_zip") == "FindUserIdByNameZip"


def test_upstream_shaped_argument_errors():
    # strings observed from upstream's env (shared/docs/taubench.md §1.6)
    assert check_arguments("get_order_details", {"order_id": "#W1", "foo": 1}, SCHEMA) == (
        "GetOrderDetails.invoke() got an unexpected keyword argument 'foo'"
    )
    assert check_arguments("get_order_details", {}, SCHEMA) == (
        "GetOrderDetails.invoke() missing 1 required positional argument: 'order_id'"
    )
    assert check_arguments("get_order_details", {"order_id": "#W1"}, SCHEMA) is None


def test_python_wording_for_several_missing_arguments():
    schema = {"parameters": {"properties": {"a": {}, "b": {}, "c": {}}, "required": ["a", "b", "c"]}, "name": "f_g"}
    assert check_arguments("f_g", {}, schema) == "FG.invoke() missing 3 required positional arguments: 'a', 'b', and 'c'"
    assert check_arguments("f_g", {"b": 1}, schema) == "FG.invoke() missing 2 required positional arguments: 'a' and 'c'"


def test_type_enum_and_nested_checks():
    assert "must be of type string, got integer" in check_arguments("get_order_details", {"order_id": 5}, SCHEMA)
    schema = {
        "parameters": {
            "properties": {
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "cabin": {"type": "string", "enum": ["economy", "business"]},
                "flights": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]},
                },
            },
            "required": [],
        }
    }
    assert check_arguments("t", {"n": True}, schema) is not None  # a bool is not an integer
    assert check_arguments("t", {"n": 1.0}, schema) is not None
    assert check_arguments("t", {"x": 1}, schema) is None and check_arguments("t", {"x": 1.5}, schema) is None
    assert "must be one of" in check_arguments("t", {"cabin": "first"}, schema)
    assert "missing the required field 'date'" in check_arguments("t", {"flights": [{}]}, schema)
    assert "'flights'[0].date" in check_arguments("t", {"flights": [{"date": 3}]}, schema)
    assert "multiple values" in check_arguments("t", {"data": {}}, schema)
