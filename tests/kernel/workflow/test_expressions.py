"""The safe expression evaluator: the documented subset works, everything else is refused."""

from __future__ import annotations

from typing import Any

import pytest

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.expressions import (
    MAX_EXPRESSION_LENGTH,
    compile_expression,
    is_expression,
    translate,
)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("1 + 2 * 3", {}, 7),
        ("(amount - fee) / 2", {"amount": 10, "fee": 4}, 3),
        ("amount // 3 + amount % 3", {"amount": 10}, 4),
        ("2 ** 10", {}, 1024),
        ("-x + +y", {"x": 1, "y": 3}, 2),
        ("amount > 1000", {"amount": 1500}, True),
        ("amount >= 1000 and amount < 2000", {"amount": 2000}, False),
        ("0 < amount <= 10", {"amount": 10}, True),
        ("a or b", {"a": False, "b": True}, True),
        ("not approved", {"approved": False}, True),
        ("status == '通过'", {"status": "通过"}, True),
        ("status != 'ok'", {"status": "ok"}, False),
        ("level in ['red', 'yellow']", {"level": "red"}, True),
        ("level not in ('red',)", {"level": "green"}, True),
        ("'x' if flag else 'y'", {"flag": True}, "x"),
        ("note == None", {"note": None}, True),
        ("len(signers) >= 2", {"signers": ["a", "b"]}, True),
        ("max(a, b) + min(a, b) + abs(-1)", {"a": 1, "b": 5}, 7),
        ("round(ratio, 1) == 0.7", {"ratio": 0.66}, True),
        ("int('3') + float('0.5') == 3.5", {}, True),
        ("str(n) + '件'", {"n": 3}, "3件"),
        ("bool(1)", {}, True),
        ("form['amount'] > 10", {"form": {"amount": 11}}, True),
        ("order.amount > 10", {"order": {"amount": 11}}, True),
        ("items[0]", {"items": ["first"]}, "first"),
        ("{'a': 1}['a']", {}, 1),
    ],
)
def test_python_spelling(text: str, variables: dict[str, Any], expected: Any) -> None:
    assert compile_expression(text).evaluate(variables) == expected


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${amount > 1000}", {"amount": 1001}, True),
        ("#{approved}", {"approved": True}, True),
        ("${a && !b}", {"a": True, "b": False}, True),
        ("${a || b}", {"a": False, "b": False}, False),
        ("${!approved}", {"approved": True}, False),
        ("${x != 1}", {"x": 2}, True),
        ("${x eq 'a'}", {"x": "a"}, True),
        ("${x ne 'a'}", {"x": "a"}, False),
        ("${x gt 1 and x lt 5}", {"x": 3}, True),
        ("${x ge 3 or x le 0}", {"x": 3}, True),
        ("${x div 2}", {"x": 5}, 2.5),
        ("${x mod 2}", {"x": 5}, 1),
        ("${flag == true}", {"flag": True}, True),
        ("${flag == false}", {"flag": True}, False),
        ("${note == null}", {"note": None}, True),
        ("${clarified == 'yes'}", {"clarified": "yes"}, True),
        # operators inside string literals are text, not operators
        ("${s == 'a && !b || eq'}", {"s": "a && !b || eq"}, True),
        ('${s == "it\'s"}', {"s": "it's"}, True),
    ],
)
def test_juel_spelling(text: str, variables: dict[str, Any], expected: Any) -> None:
    assert compile_expression(text).evaluate(variables) == expected


def test_translate_and_wrappers() -> None:
    assert translate("${a && b}") == "a  and  b"
    assert translate("a != b") == "a != b"
    assert is_expression("${approver}")
    assert is_expression("  #{x} ")
    assert not is_expression("zhangsan")
    assert not is_expression(None)


def test_names_lists_variables_not_functions() -> None:
    expression = compile_expression("${len(signers) > quorum and form.amount > 0}")
    assert expression.names == ["form", "quorum", "signers"]
    assert compile_expression("1 + 2").names == []


def test_compiled_once_and_cached() -> None:
    assert compile_expression("${x > 1}") is compile_expression("${x > 1}")


def test_evaluate_bool_requires_a_boolean() -> None:
    assert compile_expression("x > 1").evaluate_bool({"x": 2}) is True
    with pytest.raises(InvalidInput) as error:
        compile_expression("x + 1").evaluate_bool({"x": 2})
    assert error.value.code == "condition_type_error"
    assert "number" in error.value.message_en


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        ("amount > 1000", {"amount": "1500"}),  # a form field left as text
        ("amount == 1", {"amount": "1"}),  # would silently be False in Python
        ("flag == 1", {"flag": True}),
        ("amount < limit", {"amount": 1, "limit": None}),
        ("name + 1", {"name": "a"}),
        ("len(n)", {"n": 5}),
        ("order.amount > 1", {"order": 5}),
        ("items['a']", {"items": [1]}),
    ],
)
def test_wrong_variable_types_are_a_clear_error(text: str, variables: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as error:
        compile_expression(text).evaluate(variables)
    assert error.value.code == "condition_type_error"
    assert error.value.details["expression"] == text
    assert error.value.message_zh.startswith("表达式")


@pytest.mark.parametrize(
    ("text", "variables", "name"),
    [
        ("missing > 1", {}, "missing"),
        ("${a && b}", {"a": True}, "b"),
        ("form.amount > 1", {"form": {}}, "form.amount"),
        ("form['amount'] > 1", {"form": {}}, "form['amount']"),
        ("items[3]", {"items": []}, "items[3]"),
    ],
)
def test_unknown_variables(text: str, variables: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidInput) as error:
        compile_expression(text).evaluate(variables)
    assert error.value.code == "unknown_variable"
    assert error.value.details["name"] == name


def test_short_circuit_skips_unknown_names() -> None:
    assert compile_expression("a or b").evaluate({"a": True}) is True


@pytest.mark.parametrize(
    "text",
    [
        "().__class__",
        "x.__class__.__bases__",
        "x._private",
        "[a for a in items]",
        "{k: 1 for k in items}",
        "(a for a in items)",
        "lambda: 1",
        "open('/etc/passwd')",
        "__import__('os')",
        "eval('1')",
        "getattr(x, 'y')",
        "x.upper()",
        "len",
        "max(a, key=abs)",
        "f'{x}'",
        "{1, 2}",
        "(y := 1)",
        "*items",
        "a if",
        "1 +",
        "import os",
        "x = 1",
        "a; b",
        "${}",
        "",
        "   ",
        "x is None",
        "~x",
        "x << 2",
        "x & y",
        "...",
        "b'bytes'",
    ],
)
def test_forbidden_constructs_are_refused_at_compile_time(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        compile_expression(text)
    assert error.value.code == "invalid_expression"
    assert error.value.details["expression"] == text


def test_length_limit() -> None:
    with pytest.raises(InvalidInput) as error:
        compile_expression("1 + " * (MAX_EXPRESSION_LENGTH // 4) + "1")
    assert error.value.code == "invalid_expression"
    assert str(MAX_EXPRESSION_LENGTH) in error.value.message_en


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        ("9 ** 9999", {}),
        ("x ** x", {"x": 3_999_999}),
        ("'a' * 1000000", {}),
        ("s * n", {"s": "ab", "n": 10**6}),
        ("1 / 0", {}),
        ("int('x')", {}),
    ],
)
def test_resource_and_arithmetic_failures(text: str, variables: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as error:
        compile_expression(text).evaluate(variables)
    assert error.value.code == "expression_failed"


def test_variables_mapping_is_not_modified() -> None:
    variables = {"a": 1}
    compile_expression("a + 1").evaluate(variables)
    assert variables == {"a": 1}
