"""The safe expression evaluator for gateway conditions and assignment expressions.

Never ``eval``: the text is parsed once into a Python AST, checked against an allow-list
of node types at compile time (so a forbidden construct is refused when a definition is
deployed, not when an instance first reaches the gateway), and evaluated by
``simpleeval`` with only the allowed functions and the process variables as names.

The language is a documented subset (docs/workflow-definitions.md): Python-style
expressions, optionally wrapped as ``${...}`` / ``#{...}`` the way BPMN files write
JUEL, with the JUEL operators ``&& || ! eq ne gt lt ge le div mod`` and the literals
``true false null`` translated. Comparisons are strict: comparing a string with a
number is a ``condition_type_error``, not a silent ``False``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import simpleeval

from xietong.kernel.errors import InvalidInput

MAX_EXPRESSION_LENGTH = 2_000

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "bool": bool,
}

_WRAPPED = re.compile(r"^\s*[$#]\{(?P<inner>.*)\}\s*$", re.DOTALL)
# JUEL words and their Python spelling; only whole words outside string literals.
_WORDS = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "lt": "<",
    "ge": ">=",
    "le": "<=",
    "div": "/",
    "mod": "%",
    "true": "True",
    "false": "False",
    "null": "None",
}
_TOKEN = re.compile(
    r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|&&|\|\||!=|!|[A-Za-z_]\w*|.", re.DOTALL
)

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
    ast.Subscript,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.Dict,
)


def _invalid(text: str, reason_zh: str, reason_en: str) -> InvalidInput:
    return InvalidInput(
        f"表达式无效：{text!r}（{reason_zh}）",
        f"invalid expression {text!r}: {reason_en}",
        code="invalid_expression",
        details={"expression": text, "reason": reason_en},
    )


def is_expression(text: str | None) -> bool:
    """True for a ``${...}`` / ``#{...}`` value (an assignee may be a plain username)."""
    return bool(text) and _WRAPPED.match(text or "") is not None


def translate(text: str) -> str:
    """JUEL spelling to Python spelling, leaving string literals untouched."""
    match = _WRAPPED.match(text)
    body = match.group("inner") if match else text
    out: list[str] = []
    for token in _TOKEN.findall(body):
        if token == "&&":
            out.append(" and ")
        elif token == "||":
            out.append(" or ")
        elif token == "!":
            out.append(" not ")
        else:
            out.append(_WORDS.get(token, token))
    return "".join(out).strip()


def _check_tree(text: str, tree: ast.AST) -> frozenset[str]:
    """Refuse every construct outside the allow-list; return the variable names used."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            kind = type(node).__name__
            raise _invalid(text, f"不允许的语法 {kind}", f"{kind} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise _invalid(text, f"不允许访问 {node.attr}", f"access to {node.attr} is refused")
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
                called = func.id if isinstance(func, ast.Name) else ast.unparse(func)
                raise _invalid(text, f"不允许调用 {called}", f"calling {called} is not allowed")
            if node.keywords:
                raise _invalid(text, "函数不接受关键字参数", "keyword arguments are not allowed")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, str | int | float | bool | type(None)
        ):
            raise _invalid(text, "不支持的常量", f"constant {node.value!r} is not allowed")
        if isinstance(node, ast.Name):
            names.add(node.id)
    # a function name is only ever a call target, never a value or a variable
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FUNCTIONS:
            if id(node) not in called:
                raise _invalid(text, f"{node.id} 只能调用", f"{node.id} can only be called")
            names.discard(node.id)
    return frozenset(names)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


class _TypeMismatch(TypeError):
    pass


def _safe_power(base: Any, exponent: Any) -> Any:
    # simpleeval allows 3999999 ** 3999999 (seconds of CPU); conditions never need it
    integers = isinstance(base, int) and isinstance(exponent, int)
    if integers and (abs(exponent) > 1000 or max(base.bit_length(), 1) * abs(exponent) > 4096):
        raise simpleeval.NumberTooHigh(f"{base} ** {exponent} is too large")
    return operator.pow(base, exponent)


def _strict_equal(negate: bool) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        kinds = {_kind(left), _kind(right)}
        # "1" == 1 silently False hides a mistyped variable: refuse it instead
        if len(kinds) > 1 and "null" not in kinds:
            raise _TypeMismatch(f"cannot compare {_kind(left)} with {_kind(right)}")
        return (left != right) if negate else (left == right)

    return compare


def _strict_order(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        kinds = (_kind(left), _kind(right))
        if kinds not in (("number", "number"), ("string", "string")):
            raise _TypeMismatch(f"cannot order {kinds[0]} against {kinds[1]}")
        return op(left, right)

    return compare


_OPERATORS = {
    **{
        k: v
        for k, v in simpleeval.DEFAULT_OPERATORS.items()
        if k in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.In, ast.NotIn)
    },
    ast.Pow: _safe_power,
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Eq: _strict_equal(negate=False),
    ast.NotEq: _strict_equal(negate=True),
    ast.Lt: _strict_order(operator.lt),
    ast.LtE: _strict_order(operator.le),
    ast.Gt: _strict_order(operator.gt),
    ast.GtE: _strict_order(operator.ge),
}


class _Evaluator(simpleeval.EvalWithCompoundTypes):
    """simpleeval with our functions only, no comprehensions, and ``a.b`` as ``a["b"]``."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(FUNCTIONS), names=names)
        self.functions = dict(FUNCTIONS)  # the base class adds list/dict/set constructors
        for node in (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.Set):
            self.nodes.pop(node, None)

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        # JUEL's ``order.amount`` reads a key of a map variable; real attributes stay closed
        value = self._eval(node.value)
        if isinstance(value, Mapping):
            if node.attr in value:
                return value[node.attr]
            raise simpleeval.NameNotDefined(f"{ast.unparse(node)}", self.expr)
        raise _TypeMismatch(f"{ast.unparse(node.value)} is {_kind(value)}, not a map")

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        try:
            return container[key]
        except (KeyError, IndexError):
            raise simpleeval.NameNotDefined(ast.unparse(node), self.expr) from None
        except TypeError as error:
            raise _TypeMismatch(str(error)) from None


@dataclass(frozen=True)
class Expression:
    """A compiled expression: the source text, its Python spelling and the names it reads."""

    text: str
    source: str
    tree: ast.Expression = field(repr=False, compare=False)
    variables: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        """The process variables the expression reads, sorted."""
        return sorted(self.variables)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        evaluator = _Evaluator(variables)
        try:
            return evaluator.eval(self.source, previously_parsed=self.tree.body)
        except simpleeval.NameNotDefined as error:
            name = getattr(error, "name", None) or str(error)
            raise InvalidInput(
                f"表达式 {self.text!r} 使用了未定义的变量 {name}",
                f"expression {self.text!r} uses an unknown variable: {name}",
                code="unknown_variable",
                details={"expression": self.text, "name": name},
            ) from None
        except (_TypeMismatch, TypeError) as error:
            raise InvalidInput(
                f"表达式 {self.text!r} 的变量类型不符：{error}",
                f"wrong variable type in expression {self.text!r}: {error}",
                code="condition_type_error",
                details={"expression": self.text, "reason": str(error)},
            ) from None
        except (simpleeval.InvalidExpression, ArithmeticError, ValueError) as error:
            raise InvalidInput(
                f"表达式 {self.text!r} 计算失败：{error}",
                f"expression {self.text!r} failed: {error}",
                code="expression_failed",
                details={"expression": self.text, "reason": str(error)},
            ) from None

    def evaluate_bool(self, variables: Mapping[str, Any]) -> bool:
        """A gateway condition: the result must be ``true`` or ``false``, nothing truthy."""
        result = self.evaluate(variables)
        if not isinstance(result, bool):
            raise InvalidInput(
                f"条件 {self.text!r} 的结果应为真或假，实际为 {_kind(result)}",
                f"condition {self.text!r} must give true or false, got {_kind(result)}",
                code="condition_type_error",
                details={"expression": self.text, "result_type": _kind(result)},
            )
        return result


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Expression:
    """Parse and check once; the runtime evaluates the cached result many times."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid(str(text), "表达式为空", "the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise _invalid(
            text[:80] + "…",
            f"长度超过 {MAX_EXPRESSION_LENGTH} 个字符",
            f"longer than {MAX_EXPRESSION_LENGTH} characters",
        )
    source = translate(text)
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError) as error:
        message = getattr(error, "msg", str(error))
        raise _invalid(text, f"语法错误：{message}", f"syntax error: {message}") from None
    variables = _check_tree(text, tree)
    return Expression(text=text, source=source, tree=tree, variables=variables)
