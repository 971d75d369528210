"""The services API: a whole 出生一件事 over HTTP, and bad input → 4xx JSON, nothing changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.apps.services.conftest import BIRTH_FORM, PDF, PNG, City, build_city, ofd
from xietong.app import create_app
from xietong.apps.services.models import Application, Rating, SubCase, Upload
from xietong.kernel.context import Context


class Api:
    def __init__(self, client: TestClient, city: City) -> None:
        self.client = client
        self.city = city
        self._tokens: dict[str, dict[str, str]] = {}

    def auth(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            r = self.client.post(
                "/api/v1/auth/token", json={"username": username, "password": "secret-pass"}
            )
            assert r.status_code == 200, r.text
            self._tokens[username] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self._tokens[username]

    def upload(
        self, username: str, name: str, data: bytes, media: str = "application/octet-stream"
    ):
        return self.client.post(
            "/api/v1/services/uploads",
            headers=self.auth(username),
            files={"file": (name, data, media)},
        )

    def count(self, model: type) -> int:
        with self.city.ctx.db.read() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    city = build_city(ctx)
    with TestClient(create_app(ctx)) as client:
        yield Api(client, city)


def _materials(api: Api) -> dict[str, str]:
    out = {}
    for code, (name, data) in {
        "parents_id": ("id.png", PNG + b"1"),
        "delivery_record": ("record.pdf", PDF + b"2"),
        "hukou_book": ("hukou.ofd", ofd()),
        "baby_photo": ("photo.png", PNG + b"3"),
    }.items():
        r = api.upload("citizen", name, data)
        assert r.status_code == 201, r.text
        out[code] = r.json()["sha256"]
    return out


def _apply(api: Api, key: str, form: dict | None = None, materials: dict | None = None):
    return api.client.post(
        "/api/v1/services/applications",
        headers={**api.auth("citizen"), "Idempotency-Key": key},
        json={
            "bundle": "birth",
            "form": form or BIRTH_FORM,
            "materials": materials or _materials(api),
        },
    )


def _todo(api: Api, clerk: str) -> list[dict]:
    r = api.client.get("/api/v1/services/workbench/todo", headers=api.auth(clerk))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_birth_over_http(api: Api) -> None:
    public = api.client.get("/api/v1/services/bundles")
    assert [b["code"] for b in public.json()["bundles"]] == ["birth", "enterprise", "restaurant"]
    first = _apply(api, "k-1")
    assert first.status_code == 201, first.text
    number = first.json()["number"]
    again = _apply(api, "k-1")
    assert again.status_code == 200 and again.json()["number"] == number
    assert api.count(Application) == 1
    outputs = {
        "wjw.clerk": {"birth_cert_no": "T430000001"},
        "ga.clerk": {"id_number": "430102202611200011"},
        "yb.clerk": {"insurance_no": "YB-1"},
        "rs.clerk": {"card_no": "SB-1"},
    }
    for clerk, out in outputs.items():
        items = _todo(api, clerk)
        assert [i["application_number"] for i in items] == [number]
        sub = items[0]["sub_case_id"]
        page = api.client.get(f"/api/v1/services/sub-cases/{sub}", headers=api.auth(clerk)).json()
        assert set(page["form"]) <= set(page["form_schema"]["properties"])
        r = api.client.post(
            f"/api/v1/services/sub-cases/{sub}/approve",
            headers=api.auth(clerk),
            json={"outputs": out, "opinion": "同意"},
        )
        assert r.status_code == 200, r.text
    app = api.client.get(
        f"/api/v1/services/applications/{number}", headers=api.auth("citizen")
    ).json()
    assert app["status"] == "delivered"
    notice = app["documents"][-1]
    verified = api.client.post(
        "/api/v1/services/documents/verify",
        json={"content": notice["content"], "signature": notice["signature"]},
    ).json()
    assert verified["valid"] and verified["registered"]
    assert (
        api.client.get("/api/v1/services/public-key")
        .json()["public_key_pem"]
        .startswith("-----BEGIN")
    )
    departments = {str(s["department_id"]): {"level": 5} for s in app["sub_cases"]}
    body = {"bundle": {"level": "非常满意"}, "departments": departments}
    url = f"/api/v1/services/applications/{number}/rating"
    assert api.client.post(url, headers=api.auth("citizen"), json=body).status_code == 200
    twice = api.client.post(url, headers=api.auth("citizen"), json=body)
    assert twice.status_code == 409 and twice.json()["code"] == "already_rated"
    assert api.count(Rating) == 5


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("big.pdf", b"%PDF-" + b"0" * (20 * 1024 * 1024), "file_too_large"),
        ("empty.pdf", b"", "empty_file"),
        ("virus.pdf", b"MZ\x90\x00 not a pdf", "unsupported_file_type"),
        ("photo.pdf", PNG, "forged_extension"),
        ("fake.ofd", b"PK\x03\x04 broken zip", "unsupported_file_type"),
    ],
)
def test_bad_uploads(api: Api, name: str, data: bytes, code: str) -> None:
    r = api.upload("citizen", name, data)
    assert r.status_code in (413, 422), r.text
    if r.status_code == 422:
        assert r.json()["code"] == code
    assert api.count(Upload) == 0


def test_bad_applications_change_nothing(api: Api) -> None:
    materials = _materials(api)
    bad_id = _apply(api, "a", {**BIRTH_FORM, "mother_id_number": "123"}, materials)
    assert bad_id.status_code == 422 and bad_id.json()["code"] == "invalid_form"
    assert bad_id.json()["details"]["errors"][0]["field"] == "mother_id_number"
    missing = {k: v for k, v in BIRTH_FORM.items() if k != "birth_date"}
    assert _apply(api, "b", missing, materials).status_code == 422
    extra = _apply(api, "c", {**BIRTH_FORM, "salary": "1"}, materials)
    assert extra.status_code == 422
    others = api.upload("other", "x.png", PNG + b"other").json()["sha256"]
    stolen = _apply(api, "d", None, {**materials, "baby_photo": others})
    assert stolen.status_code == 422 and stolen.json()["code"] == "material_not_uploaded"
    no_key = api.client.post(
        "/api/v1/services/applications",
        headers=api.auth("citizen"),
        json={"bundle": "birth", "form": BIRTH_FORM, "materials": materials},
    )
    assert no_key.status_code == 422 and no_key.json()["code"] == "idempotency_key_required"
    unknown = api.client.post(
        "/api/v1/services/applications",
        headers={**api.auth("citizen"), "Idempotency-Key": "e"},
        json={"bundle": "nope", "form": BIRTH_FORM, "materials": materials},
    )
    assert unknown.status_code == 404
    anonymous = api.client.post(
        "/api/v1/services/applications",
        headers={"Idempotency-Key": "f"},
        json={"bundle": "birth", "form": BIRTH_FORM, "materials": materials},
    )
    assert anonymous.status_code == 401
    assert api.count(Application) == 0 and api.count(SubCase) == 0


def test_bad_workbench_actions(api: Api) -> None:
    number = _apply(api, "k").json()["number"]
    sub = _todo(api, "wjw.clerk")[0]["sub_case_id"]
    # another department's clerk
    r = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/approve",
        headers=api.auth("ga.clerk"),
        json={"outputs": {"birth_cert_no": "X"}},
    )
    assert r.status_code == 403
    r = api.client.get(f"/api/v1/services/sub-cases/{sub}", headers=api.auth("ga.clerk"))
    assert r.status_code == 403
    # missing output
    r = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/approve",
        headers=api.auth("wjw.clerk"),
        json={"outputs": {}},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_outputs"
    # the citizen is not a clerk
    r = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/approve",
        headers=api.auth("citizen"),
        json={"outputs": {"birth_cert_no": "X"}},
    )
    assert r.status_code == 403
    # rating before delivery
    r = api.client.post(
        f"/api/v1/services/applications/{number}/rating",
        headers=api.auth("citizen"),
        json={"bundle": {"level": 5}, "departments": {}},
    )
    assert r.status_code == 409 and r.json()["code"] == "not_delivered"
    ok = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/approve",
        headers=api.auth("wjw.clerk"),
        json={"outputs": {"birth_cert_no": "T1"}},
    )
    assert ok.status_code == 200
    before = api.client.get(
        f"/api/v1/services/applications/{number}", headers=api.auth("citizen")
    ).json()
    # 补正 on a finished matter
    r = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/supplement-request",
        headers=api.auth("wjw.clerk"),
        json={"reason": "再补一份", "materials": ["parents_id"]},
    )
    assert r.status_code == 409 and r.json()["code"] == "sub_case_not_processing"
    r = api.client.post(
        f"/api/v1/services/sub-cases/{sub}/approve",
        headers=api.auth("wjw.clerk"),
        json={"outputs": {"birth_cert_no": "T2"}},
    )
    assert r.status_code == 409
    after = api.client.get(
        f"/api/v1/services/applications/{number}", headers=api.auth("citizen")
    ).json()
    assert after == before
    # someone else's application
    r = api.client.get(f"/api/v1/services/applications/{number}", headers=api.auth("other"))
    assert r.status_code == 403


def test_the_answering_system_is_edited_like_any_matter_field(api: Api) -> None:
    path = "/api/v1/services/matters/430100-SCJG-YHKH"
    head = api.auth("scjg.head")
    matter = api.client.get(path).json()
    assert matter["external_system_code"] == "scjg-bank-gateway"
    keep = {
        "id",
        "department_id",
        "department_name",
        "matter_type_zh",
        "version",
        "created_at",
        "updated_at",
    }
    body = {k: v for k, v in matter.items() if k not in keep}
    bad = api.client.put(path, headers=head, json={**body, "external_system_code": "银行 网关"})
    assert bad.status_code == 422, bad.text
    assert bad.json()["details"]["problems"][0]["field"] == "external_system_code"
    assert api.client.get(path).json() == matter  # nothing changed
    other = api.client.put(path, headers=head, json={**body, "external_system_code": "scjg-b2"})
    assert other.status_code == 200, other.text
    assert other.json()["external_system_code"] == "scjg-b2"
    assert other.json()["version"] == matter["version"] + 1
    cleared = api.client.put(path, headers=head, json={**body, "external_system_code": ""})
    assert cleared.status_code == 200 and cleared.json()["external_system_code"] is None
