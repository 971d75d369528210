"""Application forms: JSON Schema (2020-12) validated with ``jsonschema``.

A matter's form is an object schema whose properties are flat fields (string, integer,
number, boolean) with a ``title`` shown as the label. Custom formats check Chinese
numbers: ``cn-id-card`` (身份证号, ``stdnum.cn.ric``), ``cn-uscc`` (统一社会信用代码),
``cn-mobile`` and ``gb2260`` (a six-digit region code); ``date`` is ISO 8601.

A field marked ``"x-applicant": false`` is not asked of the applicant: it must come from
an upstream matter's output (e.g. the 身份证号 the 公安局 assigns a newborn).
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from stdnum.cn import ric, uscc

from xietong.kernel.errors import InvalidInput

FIELD_TYPES = ("string", "integer", "number", "boolean")
MAX_FIELDS = 200
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_GB2260 = re.compile(r"^\d{6}$")

checker = FormatChecker()


# stdnum looks the region up in its number database each time; the same numbers come
# back with every step of an application (each matter's form is checked when it starts)
_ric_valid = lru_cache(maxsize=4096)(ric.is_valid)
_uscc_valid = lru_cache(maxsize=4096)(uscc.is_valid)


@checker.checks("cn-id-card")
def _id_card(value: object) -> bool:
    return not isinstance(value, str) or _ric_valid(value)


@checker.checks("cn-uscc")
def _uscc(value: object) -> bool:
    return not isinstance(value, str) or _uscc_valid(value)


@checker.checks("cn-mobile")
def _mobile(value: object) -> bool:
    return not isinstance(value, str) or bool(_MOBILE.match(value))


@checker.checks("gb2260")
def _gb2260(value: object) -> bool:
    return not isinstance(value, str) or bool(_GB2260.match(value))


@checker.checks("date")
def _date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def schema_problems(schema: object) -> list[str]:
    """Why ``schema`` is not a usable matter form (empty when it is)."""
    if not isinstance(schema, dict):
        return ["表单须为 JSON 对象 / the form must be a JSON object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as bad:
        return [f"JSON Schema 无效 / invalid JSON Schema: {bad.message}"]
    if schema.get("type") != "object":
        return ['表单的 type 须为 "object" / the form\'s type must be "object"']
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or len(properties) > MAX_FIELDS:
        return [f"properties 须为对象且不超过 {MAX_FIELDS} 个字段 / at most {MAX_FIELDS} fields"]
    problems: list[str] = []
    for name, spec in properties.items():
        if not isinstance(spec, dict) or spec.get("type") not in FIELD_TYPES:
            problems.append(
                f"字段 {name} 的类型须为 {'/'.join(FIELD_TYPES)} / field {name}: type must be one "
                f"of {', '.join(FIELD_TYPES)}"
            )
    for name in schema.get("required", []):
        if name not in properties:
            problems.append(f"必填字段 {name} 未定义 / required field {name} is not defined")
    return problems


def field_type(schema: dict[str, Any], name: str) -> str | None:
    spec = schema.get("properties", {}).get(name)
    return spec.get("type") if isinstance(spec, dict) else None


def required(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("required", []))


def applicant_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The fields the applicant may fill in (not those reserved for upstream outputs)."""
    return {
        name: spec
        for name, spec in schema.get("properties", {}).items()
        if spec.get("x-applicant", True) is not False
    }


def errors_of(schema: dict[str, Any], data: object) -> list[dict[str, str]]:
    """Every violation as ``{field, message_zh, message_en}``, in a stable order."""
    validator = _validator(json.dumps(schema, sort_keys=True, ensure_ascii=False))
    found: list[dict[str, str]] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            field = missing or field
            title = _title(schema, field)
            found.append(
                {"field": field, "message_zh": f"缺少必填项：{title}", "message_en": error.message}
            )
            continue
        if error.validator == "additionalProperties":
            found.append(
                {"field": field, "message_zh": "包含未知字段", "message_en": error.message}
            )
            continue
        title = _title(schema, field)
        zh = f"{title} 格式不正确" if error.validator == "format" else f"{title} 不符合要求"
        found.append({"field": field, "message_zh": zh, "message_en": f"{field}: {error.message}"})
    return found


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """One validator per distinct schema (keyed by its canonical text, so an edited
    matter gets a new one)."""
    return Draft202012Validator(json.loads(schema_json), format_checker=checker)


def _title(schema: dict[str, Any], field: str) -> str:
    spec = schema.get("properties", {}).get(field)
    return spec.get("title", field) if isinstance(spec, dict) else field


def validate(schema: dict[str, Any], data: object, *, what_zh: str, what_en: str) -> None:
    """Raise ``invalid_form`` naming every bad field."""
    problems = errors_of(schema, data)
    if problems:
        first = problems[0]
        raise InvalidInput(
            f"{what_zh}填写有误：{first['message_zh']}",
            f"{what_en} is invalid: {first['message_en']}",
            code="invalid_form",
            details={"errors": problems},
        )
