"""The bounded JSON reader behind every action parser: depth counted outside strings, in linear time."""

import json
import random

import pytest

from hero_gym import actions
from hero_gym.actions import MAX_JSON_DEPTH, json_too_deep, loads_json


def _depth(value):
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _leaf(rng):
    return rng.choice([1, "a]b[", '"{"', "\\", None, "x" * rng.randint(0, 5)])


def _random_json(rng, depth):
    """Nested `depth` levels: one deep child per level, sometimes a leaf beside it (size stays linear)."""
    if depth == 0:
        return _leaf(rng)
    child = _random_json(rng, depth - 1)
    if rng.random() < 0.5:
        return [child, _leaf(rng)] if rng.random() < 0.5 else [child]
    return {rng.choice(["k", "[", "}"]): child, "z": _leaf(rng)}


def test_depth_is_counted_outside_strings_and_matches_the_decoded_value():
    rng = random.Random(8123)
    for _ in range(300):
        value = _random_json(rng, rng.randint(0, 140))
        text = json.dumps(value)
        assert json_too_deep(text) == (_depth(value) > MAX_JSON_DEPTH), text[:80]
    assert not json_too_deep(json.dumps({"a": "[" * 500}))  # brackets inside a string do not nest
    assert json_too_deep("[" * 101) and not json_too_deep("[" * 100)


def test_every_string_match_attempt_succeeds_so_the_scan_is_linear():
    # The old pattern failed (and rescanned to the end) from every quote of '"\\"\\"\\"...': quadratic time.
    for text in ('"' + '\\"' * 200, '"' + "\\" * 201, '"a' * 100, 'x"\\"\\', '"\n"\\\n"'):
        for i, ch in enumerate(text):
            if ch == '"':
                assert actions._JSON_STRING.match(text, i) is not None, (text[:20], i)


@pytest.mark.parametrize("text, message", [
    ("[" * 101 + "]" * 101, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"),
    ('{"a": ' + "7" * 4301 + "}", "integer with more than 4300 digits"),
    ('{"a": -' + "7" * 4301 + "}", "integer with more than 4300 digits"),
])
def test_loads_json_refuses_with_a_fixed_message(text, message):
    with pytest.raises(ValueError, match=message):
        loads_json(text)
    assert loads_json('{"a": ' + "7" * 4300 + "}")["a"] == int("7" * 4300)
