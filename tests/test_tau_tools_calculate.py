"""`calculate`, `think`, `transfer_to_human_agents`: upstream's observable behaviour without eval()."""

import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_gym.envs.tau import airline_tools, retail_tools
from hero_gym.envs.tau.common_tools import CALC_CHARS

calc = retail_tools.TOOLS["calculate"]


def reference(expression: str) -> str:
    """What upstream computes: the character check, then eval with no builtins (safe on this alphabet)."""
    if not all(ch in "0123456789+-*/(). " for ch in expression):
        return "Error: invalid characters in expression"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `2(3)` makes the compiler warn before eval raises
            return str(round(float(eval(expression, {"__builtins__": None}, {})), 2))
    except Exception as e:  # noqa: BLE001
        return f"Error: {e}"


@pytest.mark.parametrize("expression, expected", [
    ("2 + 2", "4.0"),
    ("10 / 3", "3.33"),
    ("(1299.99 - 1049.5) * 2", "500.98"),
    ("2**10", "1024.0"),
    ("7 // 2", "3.0"),
    ("-(3)", "-3.0"),
    ("  5", "5.0"),
    ("1/0", "Error: division by zero"),
    ("2**x", "Error: invalid characters in expression"),
    ("__import__('os').system('true')", "Error: invalid characters in expression"),
    ("1e5", "Error: invalid characters in expression"),
    ("abs(-1)", "Error: invalid characters in expression"),
    ("", "Error: invalid syntax (<string>, line 0)"),
    ("1 +", "Error: invalid syntax (<string>, line 1)"),
    ("2(3)", "Error: 'int' object is not callable"),
    ("()", "Error: float() argument must be a string or a real number, not 'tuple'"),
    ("10**400", "Error: int too large to convert to float"),
])
def test_calculate_exact_observations(expression, expected):
    assert calc(None, expression=expression) == expected
    assert airline_tools.TOOLS["calculate"](None, expression=expression) == expected


def test_calculate_matches_eval_on_fixed_cases():
    for expression in ["1.5*4", "(2+3)*(4-1)/7", "0.1+0.2", "-2**2", "(-8)**(1/3)", "2**-1", "...", "1..2", "01"]:
        assert calc(None, expression=expression) == reference(expression), expression


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=sorted(CALC_CHARS), max_size=24).filter(lambda s: "**" not in s))
def test_calculate_matches_eval_on_random_expressions(expression):
    # "**" is excluded only because eval itself can hang on towers like 9**9**9; powers are tested above
    assert calc(None, expression=expression) == reference(expression)


def test_calculate_refuses_power_towers_quickly():
    start = time.perf_counter()
    assert calc(None, expression="9**9**9**9") == "Error: int too large to convert to float"
    assert time.perf_counter() - start < 1.0


def test_tau2_calculate_capitalises_its_own_error():
    tau2 = retail_tools.tools("tau2")["calculate"]
    assert tau2(None, expression="2**x") == "Error: Invalid characters in expression"
    assert tau2(None, expression="1/0") == "Error: division by zero"
    assert tau2(None, expression="3*1.005") == "3.01"  # float round() as upstream: 3*1.005 is 3.01499...
    assert airline_tools.tools("tau2")["calculate"](None, expression="os") == "Error: Invalid characters in expression"


def test_think_and_transfer():
    for module in (retail_tools, airline_tools):
        assert module.TOOLS["think"](None, thought="check the policy") == ""
        assert module.TOOLS["transfer_to_human_agents"](None, summary="wants a human") == "Transfer successful"
        assert module.TERMINATE_TOOLS == {"transfer_to_human_agents"}
        assert "think" not in module.tools("tau2")


def test_unknown_version_is_a_clear_error():
    for module in (retail_tools, airline_tools):
        with pytest.raises(ValueError, match="unknown TauBench version 'v3'"):
            module.tools("v3")
        with pytest.raises(ValueError, match="unknown TauBench version"):
            module.schemas("v3")
