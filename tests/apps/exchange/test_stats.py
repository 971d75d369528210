"""Statistics per department: counts, medians and the monthly workbook."""

from __future__ import annotations

import io

import openpyxl

from tests.apps.exchange.conftest import Sharing, drain, publish_people
from tests.apps.exchange.test_gateway import grant, query, request_body

API = "/api/v1/exchange"


def test_department_stats_and_workbook(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    for _ in range(3):
        assert query(s).status_code == 200
    conditional = publish_people(s.world, s.provider, "conditional")
    pending = s.world.client.post(
        f"{API}/requests", json=request_body(conditional), headers=s.consumer
    ).json()
    s.world.client.post(
        f"{API}/requests/{pending['id']}/decision",
        json={"approve": False, "opinion": "不符合共享条件"},
        headers=s.provider,
    )
    drain(s.world.ctx)
    rows = s.world.client.get(f"{API}/stats", headers=s.consumer).json()
    by_code = {row["code"]: row for row in rows}
    provider, consumer = by_code["dept-a"], by_code["dept-b"]
    assert provider["resources_published"] == 2
    assert provider["requests_received"] == 2
    assert provider["requests_approved"] == 1 and provider["requests_refused"] == 1
    assert provider["median_approval_hours"] is not None
    assert provider["queries_served"] == 3 and provider["median_latency_ms"] > 0
    assert provider["failed_provider_calls"] == 0 and provider["quality_failures"] == 0
    assert consumer["requests_made"] == 2 and consumer["queries_made"] == 3

    month = s.world.client.get(f"{API}/stats", params={"month": "2001-01"}, headers=s.consumer)
    assert month.json() == []
    bad = s.world.client.get(f"{API}/stats", params={"month": "2026-13"}, headers=s.consumer)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_month"

    book = s.world.client.get(f"{API}/stats.xlsx", headers=s.consumer)
    assert book.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(book.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[1][:3] == ["部门代码", "部门", "发布资源数"]
    provider_row = next(row for row in values if row[0] == "dept-a")
    assert provider_row[8] == 3  # 提供查询次数
    assert values[-1][0] == "合计"
