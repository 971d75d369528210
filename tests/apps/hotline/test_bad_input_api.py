"""Bad input is a 4xx JSON error and changes nothing: no ticket, no audit leaf."""

from __future__ import annotations

import base64

import pytest

from tests.apps.hotline.conftest import Hotline

GOOD = {"text": "路灯坏了", "contact_phone": "13900001111"}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"text": "   "}, 422, "invalid_text"),
        ({"text": "长" * 5001}, 422, "invalid_text"),
        ({"district_code": "999999"}, 422, "unknown_district"),
        ({"place": "火星基地"}, 422, "unresolved_place"),
        ({"channel": "pigeon"}, 422, "unknown_channel"),
        ({"contact_phone": "12345"}, 422, "invalid_phone"),
        ({"type": "闲聊"}, 422, "unknown_type"),
        (
            {
                "attachments": [
                    {
                        "filename": "a.exe",
                        "content_type": "application/x-msdownload",
                        "content_base64": base64.b64encode(b"MZ").decode(),
                    }
                ]
            },
            422,
            "invalid_attachment",
        ),
        (
            {
                "attachments": [
                    {"filename": "a.png", "content_type": "image/png", "content_base64": "%%%"}
                ]
            },
            422,
            "invalid_attachment",
        ),
    ],
)
def test_bad_intake_changes_nothing(hotline: Hotline, change: dict, status: int, code: str) -> None:
    size = hotline.audit_size()
    response = hotline.client.post(
        "/api/v1/hotline/tickets", json={**GOOD, **change}, headers=hotline.api_key
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message_zh"] and body["message_en"]
    assert hotline.tickets() == 0 and hotline.audit_size() == size


def test_intake_needs_the_intake_role(hotline: Hotline) -> None:
    anonymous = hotline.client.post("/api/v1/hotline/tickets", json=GOOD)
    assert anonymous.status_code == 401
    clerk = hotline.client.post(
        "/api/v1/hotline/tickets", json=GOOD, headers=hotline.login("zj_clerk")
    )
    assert clerk.status_code == 403
    assert hotline.tickets() == 0


def test_attachments_are_stored_by_content(hotline: Hotline) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    made = hotline.submit(
        attachments=[
            {
                "filename": "路灯.png",
                "content_type": "image/png",
                "content_base64": base64.b64encode(png).decode(),
            }
        ]
    )
    detail = hotline.client.get(
        f"/api/v1/hotline/tickets/{made['number']}", headers=hotline.login("dispatcher")
    ).json()
    [attachment] = detail["attachments"]
    assert attachment["size"] == len(png) and attachment["filename"] == "路灯.png"
    from xietong.apps.hotline.intake import attachment_path

    assert attachment_path(hotline.ctx, attachment["sha256"]).read_bytes() == png


def test_bad_commands_change_nothing(hotline: Hotline) -> None:
    h = hotline
    made = h.submit(text="楼道灯坏了", district_code="430111")
    number = made["number"]
    clerk, dispatcher = h.login("zj_clerk"), h.login("dispatcher")
    size = h.audit_size()
    cases = [
        (
            "post",
            f"/tickets/{number}/rating",
            {"rating": "满意", "token": made["citizen_token"]},
            None,
            409,
            "invalid_status",
        ),
        ("post", f"/tickets/{number}/reply", {"text": "好了"}, clerk, 409, "invalid_status"),
        (
            "post",
            f"/tickets/{number}/extensions",
            {"hours": 0, "reason": "x"},
            clerk,
            422,
            "invalid_hours",
        ),
        (
            "post",
            f"/tickets/{number}/extensions",
            {"hours": 7, "reason": ""},
            clerk,
            422,
            "reason_required",
        ),
        (
            "post",
            f"/tickets/{number}/dispatch",
            {"category": "外星事务"},
            dispatcher,
            422,
            "unknown_category",
        ),
        (
            "post",
            f"/tickets/{number}/follow-up",
            {"rating": "还行"},
            dispatcher,
            422,
            "invalid_rating",
        ),
        ("post", "/tickets/123/accept", None, clerk, 404, "not_found"),
        (
            "put",
            "/routes",
            {"category": "城乡建设", "department_code": "nope"},
            None,
            401,
            "unauthenticated",
        ),
    ]
    for method, path, body, headers, status, code in cases:
        response = getattr(h.client, method)(
            f"/api/v1/hotline{path}", json=body, headers=headers or {}
        )
        assert response.status_code == status, (path, response.text)
        assert response.json()["code"] == code, (path, response.text)
    ticket = h.ticket(number)
    assert ticket.status == "dispatched" and ticket.reply is None and ticket.accepted_at is None
    assert h.audit_size() == size


def test_routing_table_is_edited_by_administrators(hotline: Hotline) -> None:
    h = hotline
    admin, clerk = h.login("admin"), h.login("zj_clerk")
    routes = h.client.get("/api/v1/hotline/routes", headers=clerk).json()
    assert {(r["category"], r["district_code"]) for r in routes} >= {
        ("城乡建设", None),
        ("城乡建设", "430104"),
    }
    body = {"category": "交通运输", "department_code": "zj", "district_code": "430111"}
    assert h.client.put("/api/v1/hotline/routes", json=body, headers=clerk).status_code == 403
    bad = h.client.put(
        "/api/v1/hotline/routes", json={**body, "district_code": "000000"}, headers=admin
    )
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_district"
    made = h.client.put("/api/v1/hotline/routes", json=body, headers=admin)
    assert made.status_code == 200 and made.json()["district_name"] == "雨花区"
    gone = h.client.delete(f"/api/v1/hotline/routes/{made.json()['id']}", headers=admin)
    assert gone.status_code == 204
    missing = h.client.delete(f"/api/v1/hotline/routes/{made.json()['id']}", headers=admin)
    assert missing.status_code == 404
