"""The catalogue over HTTP: every route's action, department scope, workbook, DCAT formats."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
from rdflib import Graph

from tests.api.conftest import World
from tests.apps.exchange.test_workbook import ITEM_ROWS, resource_row, workbook
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.org import service as org

API = "/api/v1/exchange"


def steward(world: World, username: str, dept: int) -> dict[str, str]:
    op = operator_actor("test")
    user = org.add_user(world.ctx, op, username, username.upper(), "secret")
    org.grant_membership(world.ctx, op, user.id, dept, Role.DATA_STEWARD)
    return world.token(username)


def body(provider: str = "dept-a", **changes: Any) -> dict[str, Any]:
    return {
        "name": "户籍人口基本信息",
        "category": [
            {"code": "1", "name": "基础信息资源"},
            {"code": "01", "name": "人口基础信息"},
            {"code": "001", "name": "户籍人口"},
        ],
        "provider_code": provider,
        "summary": "户籍人口的身份与户籍登记信息。",
        "format": "database",
        "items": [
            {"name": "姓名", "data_type": "string", "classification": "sensitive"},
            {"name": "出生日期", "data_type": "date", "classification": "internal"},
        ],
        "share_type": "unconditional",
        "share_methods": ["api"],
        "update_cycle": "daily",
        **changes,
    }


def test_maintain_and_read_entries(world: World) -> None:
    client = world.client
    mine = steward(world, "steward_a", world.dept_a)
    created = client.post(f"{API}/resources", json=body(), headers=mine)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    assert code == "101001/000001"
    path = f"{API}/resources/{code}"
    updated = client.put(
        path, json={**body(name="户籍人口信息"), "expected_version": 1}, headers=mine
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = client.put(path, json={**body(), "expected_version": 1}, headers=mine)
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    clerk = world.token("clerk_b")
    assert client.get(path, headers=clerk).status_code == 404  # a draft, not theirs
    assert client.post(f"{path}/publish", headers=mine).json()["status"] == "published"
    seen = client.get(path, headers=clerk)
    assert seen.status_code == 200 and seen.json()["provider_code"] == "dept-a"
    found = client.get(
        f"{API}/resources", params={"q": "户籍", "share_type": "unconditional"}, headers=clerk
    )
    assert found.json()["total"] == 1 and found.json()["resources"][0]["code"] == code
    withdrawn = client.post(f"{path}/withdraw", json={"reason": "停用"}, headers=mine)
    assert withdrawn.json()["status"] == "withdrawn"
    draft = client.post(f"{API}/resources", json=body(), headers=mine).json()["code"]
    assert client.delete(f"{API}/resources/{draft}", headers=mine).status_code == 204


def test_bad_input_and_scope(world: World) -> None:
    client = world.client
    mine = steward(world, "steward_a", world.dept_a)
    theirs = steward(world, "steward_b", world.dept_b)
    refused = client.post(
        f"{API}/resources", json=body(share_type="not_shared", share_methods=[]), headers=mine
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "legal_basis_required"
    assert refused.json()["details"]["problems"][0]["field"] == "not_shared_basis"
    other = client.post(f"{API}/resources", json=body("dept-b"), headers=mine)
    assert other.status_code == 403
    code = client.post(f"{API}/resources", json=body("dept-b"), headers=theirs).json()["code"]
    assert client.post(f"{API}/resources/{code}/publish", headers=mine).status_code == 403
    assert (
        client.put(f"{API}/resources/{code}", json=body("dept-b"), headers=mine).status_code == 403
    )
    # no data-steward or head role: refused at the door
    clerk = world.token("clerk_a")
    assert client.post(f"{API}/resources", json=body(), headers=clerk).status_code == 403
    unknown = client.get(f"{API}/resources/101001/999999", headers=clerk)
    assert unknown.status_code == 404


def test_the_catalogue_needs_a_signed_in_caller(world: World) -> None:
    for path in ("catalog.ttl", "catalog.jsonld", "resources", "import/template"):
        assert world.client.get(f"{API}/{path}").status_code == 401


def test_dcat_formats(world: World) -> None:
    client = world.client
    admin = world.token("admin")
    code = client.post(f"{API}/resources", json=body(), headers=admin).json()["code"]
    client.post(f"{API}/resources/{code}/publish", headers=admin)
    clerk = world.token("clerk_b")
    turtle = client.get(f"{API}/catalog.ttl", headers=clerk)
    assert turtle.status_code == 200
    assert turtle.headers["content-type"].startswith("text/turtle")
    graph = Graph().parse(data=turtle.text, format="turtle")
    assert "http://testserver/api/v1/exchange/resources/101001/000001" in {
        str(s) for s in graph.subjects()
    }
    jsonld = client.get(f"{API}/catalog.jsonld", headers=clerk)
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert "@context" in jsonld.json()


def test_workbook_over_http(world: World) -> None:
    client = world.client
    mine = steward(world, "steward_a", world.dept_a)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    bad = workbook([resource_row(share_type="有条件共享")], ITEM_ROWS)
    refused = client.post(f"{API}/import", files={"file": ("c.xlsx", bad, xlsx)}, headers=mine)
    assert refused.status_code == 422 and refused.json()["code"] == "import_invalid"
    errors = refused.json()["details"]["errors"]
    assert [(e["sheet"], e["row"], e["column"]) for e in errors] == [("资源", 2, "共享条件")]
    good = workbook([resource_row()], ITEM_ROWS)
    dry = client.post(
        f"{API}/import",
        params={"dry_run": True},
        files={"file": ("c.xlsx", good, xlsx)},
        headers=mine,
    )
    assert dry.json()["status"] == "validated"
    done = client.post(
        f"{API}/import",
        params={"publish": True},
        files={"file": ("c.xlsx", good, xlsx)},
        headers=mine,
    )
    assert done.status_code == 200 and done.json()["published"] == 1
    exported = client.get(f"{API}/export", params={"provider": "dept-a"}, headers=mine)
    assert exported.headers["content-type"] == xlsx
    book = openpyxl.load_workbook(io.BytesIO(exported.content))
    assert book["资源"].max_row == 2 and book["信息项"].max_row == 4
    template = client.get(f"{API}/import/template", headers=mine)
    assert template.status_code == 200 and template.headers["content-type"] == xlsx
