"""The matter catalogue and bundles: validation, search, publish checks, the workbook."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests.apps.services.conftest import City
from xietong.apps.services import bundles, catalogue, workbook
from xietong.apps.services.bundles import BundleInput, MemberInput
from xietong.apps.services.demo import BUNDLES, MATTERS
from xietong.apps.services.models import Matter
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput


def test_search_in_chinese(city: City) -> None:
    found = catalogue.search_matters(city.ctx, city.op, "医学证明")
    assert [m.code for m in found] == ["430100-WJW-CSYXZM"]
    found = catalogue.search_matters(city.ctx, city.op, "社会保险")
    assert {m.code for m in found} == {"430100-YB-CXJMCB", "430100-RS-SBKSL", "430100-RS-DWSBDJ"}
    assert catalogue.search_matters(city.ctx, city.op, "公安局 户口")[0].code == "430100-GA-CSDJ"
    assert catalogue.search_matters(city.ctx, city.op, "不存在的东西") == []
    assert [b.code for b in bundles.list_bundles(city.ctx, city.op, "出生")] == ["birth"]


def test_bad_matter_is_refused_with_every_problem(city: City) -> None:
    bad = replace(
        MATTERS[0],
        code="NEW-1",
        matter_type="许可证",
        promised_days=9,
        statutory_days=5,
        form_schema={"type": "object", "properties": {"x": {"type": "array"}}},
    )
    with pytest.raises(InvalidInput) as error:
        catalogue.create_matter(city.ctx, city.op, bad)
    fields = {p["field"] for p in error.value.details["problems"]}
    assert {"matter_type", "promised_days", "form_schema"} <= fields
    with pytest.raises(Conflict):
        catalogue.create_matter(city.ctx, city.op, MATTERS[0])
    with pytest.raises(InvalidInput) as error:
        catalogue.create_matter(
            city.ctx, city.op, replace(MATTERS[0], code="NEW-2", process_key="nope")
        )
    assert error.value.code == "unknown_process"
    # a head of 卫健委 may not maintain the 公安局's matters
    with pytest.raises(Forbidden):
        catalogue.create_matter(city.ctx, city.actor("wjw.head"), replace(MATTERS[1], code="NEW-3"))
    with city.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Matter)) == len(MATTERS)


def _draft(city: City, **changes: object) -> BundleInput:
    base = BUNDLES[0]
    data = replace(base, code="b2", **changes)  # type: ignore[arg-type]
    bundles.save_bundle(city.ctx, city.op, data)
    return data


def _problems(city: City, code: str) -> list[dict[str, str]]:
    with pytest.raises(InvalidInput) as error:
        bundles.publish_bundle(city.ctx, city.op, code)
    return error.value.details["problems"]


def test_publish_refuses_cycles(city: City) -> None:
    members = list(BUNDLES[0].matters)
    members[0] = MemberInput("430100-WJW-CSYXZM", ["430100-YB-CXJMCB"])
    _draft(city, matters=members)
    problems = _problems(city, "b2")
    assert problems[0]["code"] == "dependency_cycle"
    assert "430100-WJW-CSYXZM" in problems[0]["message_zh"]


def test_publish_names_matter_and_field(city: City) -> None:
    members = list(BUNDLES[0].matters)
    # the 出生登记 loses its mapping: its 出生医学证明编号 has no source any more
    members[1] = MemberInput("430100-GA-CSDJ", ["430100-WJW-CSYXZM"], [])
    # 医保 maps a number output onto a string field of another matter's output name
    members[2] = MemberInput(
        "430100-YB-CXJMCB",
        ["430100-GA-CSDJ"],
        [{"from": "430100-RS-SBKSL", "output": "card_no", "to": "id_number"}],
    )
    _draft(city, matters=members)
    found = {(p["matter"], p["field"], p["code"]) for p in _problems(city, "b2")}
    assert ("430100-GA-CSDJ", "birth_cert_no", "unsourced_field") in found
    assert ("430100-YB-CXJMCB", "id_number", "source_not_upstream") in found


def test_publish_checks_types(city: City) -> None:
    number_output = replace(
        MATTERS[0],
        code="WJW-NUM",
        outputs=[{"name": "birth_cert_no", "title": "编号", "type": "integer"}],
    )
    catalogue.create_matter(city.ctx, city.op, number_output)
    members = [
        MemberInput("WJW-NUM"),
        MemberInput(
            "430100-GA-CSDJ",
            ["WJW-NUM"],
            [{"from": "WJW-NUM", "output": "birth_cert_no", "to": "birth_cert_no"}],
        ),
    ]
    _draft(city, matters=members)
    problems = _problems(city, "b2")
    assert [(p["matter"], p["field"], p["code"]) for p in problems] == [
        ("430100-GA-CSDJ", "birth_cert_no", "type_mismatch")
    ]


def test_merged_form_and_materials_ask_once(city: City) -> None:
    view = bundles.get_bundle(city.ctx, city.op, "birth")
    fields = list(view.merged_form["properties"])
    assert len(fields) == len(set(fields))
    assert "baby_name" in fields and "birth_cert_no" not in fields and "id_number" not in fields
    codes = [m["code"] for m in view.merged_materials]
    assert codes.count("hukou_book") == 1 and codes.count("parents_id") == 1
    hukou = next(m for m in view.merged_materials if m["code"] == "hukou_book")
    assert hukou["matters"] == ["430100-GA-CSDJ", "430100-YB-CXJMCB"]
    # 1 (卫健) + 3 (公安) + max(2 医保, 5 人社)
    assert view.promised_days == 9


def test_workbook_round_trip_and_all_or_nothing(city: City) -> None:
    data = workbook.export_matters_xlsx(city.ctx, city.op)
    report = workbook.import_matters_xlsx(city.ctx, city.op, data)
    assert report.errors == [] and report.unchanged == len(MATTERS) and report.created == 0
    book = load_workbook(io.BytesIO(data))
    sheet = book["事项"]
    sheet.append(
        [
            "NEW-OK",
            "新事项",
            "430100-wjw",
            "公共服务",
            "",
            "",
            '{"type":"object"}',
            1,
            2,
            "0",
            "svc_review",
            "",
            "在用",
        ]
    )
    sheet.append(
        [
            "NEW-BAD",
            "坏事项",
            "430100-wjw",
            "乱写",
            "",
            "",
            "not json",
            "x",
            2,
            "0",
            "svc_review",
            "",
            "在用",
        ]
    )
    sheet.cell(row=2, column=2, value="改名的事项")
    buffer = io.BytesIO()
    book.save(buffer)
    report = workbook.import_matters_xlsx(city.ctx, city.op, buffer.getvalue())
    assert report.errors and {e.row for e in report.errors} == {len(MATTERS) + 3}
    with city.ctx.db.read() as session:  # nothing written, not even the good rows
        assert session.scalar(select(func.count()).select_from(Matter)) == len(MATTERS)
        assert "改名的事项" not in set(session.scalars(select(Matter.name)))
    sheet.delete_rows(len(MATTERS) + 3)
    buffer = io.BytesIO()
    book.save(buffer)
    report = workbook.import_matters_xlsx(city.ctx, city.op, buffer.getvalue())
    assert (report.created, report.updated, report.errors) == (1, 1, [])
    with pytest.raises(InvalidInput):
        workbook.import_matters_xlsx(city.ctx, city.op, b"not a workbook")


def test_delete_only_unused_matters(city: City) -> None:
    with pytest.raises(Conflict) as error:
        catalogue.delete_matter(city.ctx, city.op, "430100-WJW-CSYXZM")
    assert error.value.code == "matter_in_use"
    catalogue.create_matter(city.ctx, city.op, replace(MATTERS[0], code="SPARE-1"))
    catalogue.delete_matter(city.ctx, city.op, "SPARE-1")
    assert [m.code for m in catalogue.search_matters(city.ctx, city.op, "SPARE")] == []


def test_unpublished_bundle_cannot_be_applied_for(city: City) -> None:
    from xietong.apps.services import applications
    from xietong.kernel.errors import NotFound

    bundles.withdraw_bundle(city.ctx, city.op, "birth")
    with pytest.raises(NotFound):
        applications.submit(city.ctx, city.actor("citizen"), "birth", {}, {}, "k")
    with pytest.raises(Forbidden):  # a draft is not shown to the public
        bundles.get_bundle(city.ctx, city.actor("citizen"), "birth")
