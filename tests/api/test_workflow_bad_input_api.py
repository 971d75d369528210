"""Bad input to the workflow API: a clear error in the one error shape, nothing changed.

"Nothing changed" is checked by ``Api.unchanged``: the audit tree size, the outbox, the
deployed definitions and the instance (its status, tokens, tasks, variables, history)
are the same before and after the refused request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import World
from tests.api.test_workflow_operations_api import (
    BASE,
    LINE,
    PERMIT,
    Api,
    refused,
    start_at_review,
)

NOBODY = 987654

# the gateway compares a number: a string amount is a type error, not a silent False
PRICE = """
key: price
steps:
  - {id: apply, task: {assignee: clerk_a}}
  - choose:
      - when: "${amount > 1000}"
        steps: [{id: big, task: {assignee: boss}}]
      - otherwise: [{id: small, task: {assignee: rev1}}]
"""

DEAD_END = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn" targetNamespace="t">
  <process id="stuck_process" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="accept" camunda:assignee="clerk_a"/>
    <userTask id="stuck" camunda:assignee="clerk_a"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <sequenceFlow id="f2" sourceRef="accept" targetRef="end"/>
    <sequenceFlow id="f3" sourceRef="accept" targetRef="stuck"/>
  </process>
</definitions>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="t">
  <process id="xxe" name="&secret;" isExecutable="true"><startEvent id="s"/></process>
</definitions>
"""

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + ']><definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol9;</definitions>'
)

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>
"""


@pytest.fixture
def api(world: World) -> Api:
    return Api.with_staff(world)


@pytest.fixture
def at_review(api: Api) -> tuple[int, dict[str, Any]]:
    """A ``line`` instance whose 申请 is done and whose 审核 (rev1's) is open."""
    return start_at_review(api)


def _still_open(api: Api, instance_id: int, task_id: int) -> None:
    task = next(t for t in api.tasks(instance_id) if t["id"] == task_id)
    assert task["status"] == "open" and task["outcome"] is None
    assert api.status(instance_id) == "running"


# -- completing --


def test_completing_a_task_twice_is_409(api: Api, at_review: tuple[int, dict[str, Any]]) -> None:
    instance_id, review = at_review
    api.complete(review, "rev1", opinion="同意")
    with api.unchanged(instance_id):
        answer = refused(api.try_act(review, "complete", "rev1"), 409, "task_already_completed")
        assert answer["details"] == {"task_id": review["id"], "status": "completed"}
        refused(
            api.try_act(review, "complete", "rev1", {"outcome": "reject"}),
            409,
            "task_already_completed",
        )


def test_completing_a_stale_version_is_409(api: Api, at_review: tuple[int, dict[str, Any]]) -> None:
    instance_id, review = at_review
    api.act(review, "transfer", "rev1", {"user_id": api.uid("rev2")})  # the version moved on
    with api.unchanged(instance_id):
        body = {"version": review["version"]}
        refused(api.try_act(review, "complete", "rev2", body), 409, "stale")
    _still_open(api, instance_id, review["id"])


@pytest.mark.parametrize("user", ["clerk_b", "rev2", "head_a", "admin"])
def test_completing_by_someone_not_allowed_is_403(
    api: Api, at_review: tuple[int, dict[str, Any]], user: str
) -> None:
    instance_id, review = at_review
    with api.unchanged(instance_id):
        refused(api.try_act(review, "complete", user), 403, "not_task_holder")
    _still_open(api, instance_id, review["id"])


def test_completing_a_candidate_task_as_a_non_candidate_is_403(api: Api) -> None:
    api.deploy_yaml(LINE)
    started = api.start("line")
    api.walk(started["id"], ("apply", "clerk_a"), ("review", "rev1"))
    approve = api.task(started["id"], "approve")  # candidates: approvers of dept A
    with api.unchanged(started["id"]):
        refused(api.try_act(approve, "complete", "rev2"), 403, "not_task_holder")
        refused(api.try_act(approve, "claim", "rev2"), 403, "not_candidate")


# every operation on a live task of an instance that cannot move
BLOCKED = [
    ("complete", "rev1", {"outcome": "approve", "opinion": "同意"}),
    ("claim", "rev1", None),
    ("send-back", "rev1", {"node_id": "apply"}),
    ("reject-to-applicant", "rev1", None),
    ("transfer", "rev1", {"user_id": "rev2"}),
    ("delegate", "rev1", {"user_id": "rev2"}),
    ("add-signer", "rev1", {"user_ids": ["rev2"]}),
    ("urge", "clerk_a", {"message": "请尽快"}),
]


def _ids(api: Api, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """Usernames in a body's user fields as user ids."""
    if body is None:
        return None
    out = dict(body)
    if "user_id" in out:
        out["user_id"] = api.uid(out["user_id"])
    if "user_ids" in out:
        out["user_ids"] = [api.uid(name) for name in out["user_ids"]]
    return out


@pytest.mark.parametrize(
    ("control", "user", "code"),
    [("suspend", "head_a", "instance_suspended"), ("terminate", "head_a", "instance_ended")],
)
def test_operations_on_a_suspended_or_ended_instance_are_409(
    api: Api, at_review: tuple[int, dict[str, Any]], control: str, user: str, code: str
) -> None:
    instance_id, review = at_review
    api.do(f"/instances/{instance_id}/{control}", user, {"reason": "测试"})
    apply = api.tasks(instance_id, "apply")[0]
    with api.unchanged(instance_id):
        for operation, actor, body in BLOCKED:
            refused(api.try_act(review, operation, actor, _ids(api, body)), 409, code)
        refused(api.try_act(apply, "withdraw", "clerk_a"), 409, code)
        refused(
            api.post(f"/instances/{instance_id}/jump", "admin", {"node_id": "approve"}), 409, code
        )
        refused(api.post(f"/instances/{instance_id}/suspend", "head_a"), 409, code)


def test_completing_on_a_completed_instance_is_409(api: Api) -> None:
    api.deploy(PERMIT.format(approver="head_a"), "application/xml")
    started = api.start("permit")
    api.walk(started["id"], ("accept", "clerk_a"), ("approve", "head_a"))
    assert api.status(started["id"]) == "completed"
    approve = api.tasks(started["id"], "approve")[0]
    with api.unchanged(started["id"]):
        refused(api.try_act(approve, "complete", "head_a"), 409, "instance_ended")
        refused(api.try_act(approve, "withdraw", "head_a"), 409, "instance_ended")


def test_operations_on_a_task_in_the_wrong_state(
    api: Api, at_review: tuple[int, dict[str, Any]]
) -> None:
    instance_id, review = at_review  # open, rev1's, never transferred
    with api.unchanged(instance_id):
        refused(api.try_act(review, "withdraw", "rev1"), 409, "task_open")
        refused(api.try_act(review, "resolve", "rev1"), 409, "task_open")
        refused(api.try_act(review, "reclaim", "rev1"), 403, "not_previous_holder")
        refused(api.try_act(review, "remove-signer", "rev1"), 403, "not_group_signer")
        refused(api.try_act(review, "remove-signer", "head_a"), 409, "last_signer")


# -- 退回 and 加签 --


@pytest.mark.parametrize(
    ("node_id", "code"),
    [
        ("approve", "node_not_reached"),  # later in the process
        ("archive", "node_not_reached"),  # on a path not taken
        ("decide", "not_returnable"),  # a gateway
        ("nowhere", "not_returnable"),  # no such node
    ],
)
def test_send_back_to_a_node_never_reached_is_422(
    api: Api, at_review: tuple[int, dict[str, Any]], node_id: str, code: str
) -> None:
    instance_id, review = at_review
    with api.unchanged(instance_id):
        answer = refused(api.try_act(review, "send-back", "rev1", {"node_id": node_id}), 422, code)
    assert answer["details"] == {"node": node_id}
    _still_open(api, instance_id, review["id"])


def test_add_signer_of_an_unknown_user_is_404(
    api: Api, at_review: tuple[int, dict[str, Any]]
) -> None:
    instance_id, review = at_review
    with api.unchanged(instance_id):
        body = {"user_ids": [api.uid("rev2"), NOBODY], "position": "parallel"}
        answer = refused(api.try_act(review, "add-signer", "rev1", body), 404, "user_not_found")
        assert answer["details"] == {"user_id": NOBODY}
        for bad in ({"user_ids": []}, {"user_ids": [api.uid("rev2")], "position": "sideways"}):
            refused(api.try_act(review, "add-signer", "rev1", bad), 422, "invalid_request")
        refused(api.try_act(review, "transfer", "rev1", {"user_id": NOBODY}), 404, "user_not_found")
        refused(api.try_act(review, "delegate", "rev1", {"user_id": NOBODY}), 404, "user_not_found")
        copy = {"user_ids": [NOBODY]}
        refused(api.post(f"/instances/{instance_id}/cc", "clerk_a", copy), 404, "user_not_found")
    assert [t["node_id"] for t in api.tasks(instance_id)] == ["apply", "review"]


# -- variables and conditions --


def test_a_variable_of_the_wrong_type_for_a_gateway_is_422(api: Api) -> None:
    api.deploy_yaml(PRICE)
    started = api.start("price")
    apply = api.task(started["id"], "apply")
    with api.unchanged(started["id"]):
        body = {"outcome": "approve", "variables": {"amount": "1500"}}
        answer = refused(
            api.try_act(apply, "complete", "clerk_a", body), 422, "condition_type_error"
        )
        assert answer["details"]["expression"] == "${amount > 1000}"
    _still_open(api, started["id"], apply["id"])
    assert "amount" not in api.instance(started["id"])["variables"]

    api.complete(apply, "clerk_a", variables={"amount": 1500})
    assert api.open_nodes(started["id"]) == ["big"]


def test_a_wrong_typed_start_variable_fails_at_the_gateway_not_before(api: Api) -> None:
    api.deploy_yaml(PRICE)
    started = api.start("price", variables={"amount": "1500"})
    apply = api.task(started["id"], "apply")
    with api.unchanged(started["id"]):
        refused(api.try_act(apply, "complete", "clerk_a"), 422, "condition_type_error")
    _still_open(api, started["id"], apply["id"])


BAD_COMPLETE_BODIES = [
    ({"outcome": "maybe"}, "invalid_request"),
    ({"outcome": "approve", "extra": 1}, "invalid_request"),
    ({"variables": ["not", "an", "object"]}, "invalid_request"),
    ({"attachments": "file.pdf"}, "invalid_request"),
    ({"version": "one"}, "invalid_request"),
    ({"opinion": "长" * 4001}, "opinion_too_long"),
    ({"variables": {"": 1}}, "invalid_variables"),
]


def test_a_bad_complete_body_is_422(api: Api, at_review: tuple[int, dict[str, Any]]) -> None:
    instance_id, review = at_review
    with api.unchanged(instance_id):
        for body, code in BAD_COMPLETE_BODIES:
            refused(api.try_act(review, "complete", "rev1", body), 422, code, body)
    _still_open(api, instance_id, review["id"])


# -- malformed requests, unknown ids, no credentials --

MALFORMED_JSON = [
    "/tasks/{task}/complete",
    "/tasks/{task}/send-back",
    "/instances",
    "/messages",
    "/definitions",
]


def test_malformed_json_is_400(api: Api, at_review: tuple[int, dict[str, Any]]) -> None:
    instance_id, review = at_review
    with api.unchanged(instance_id):
        for path in MALFORMED_JSON:
            response = api.post(
                path.format(task=review["id"]),
                "admin",
                content=b'{"outcome": "approve",',
                headers={"Content-Type": "application/json"},
            )
            refused(response, 400, "malformed_json", path)


UNKNOWN = [
    ("GET", "/tasks/{n}", "clerk_a", None),
    ("POST", "/tasks/{n}/complete", "clerk_a", {}),
    ("POST", "/tasks/{n}/claim", "clerk_a", None),
    ("POST", "/tasks/{n}/send-back", "clerk_a", {"node_id": "apply"}),
    ("POST", "/tasks/{n}/add-signer", "clerk_a", {"user_ids": [1]}),
    ("POST", "/tasks/{n}/withdraw", "clerk_a", None),
    ("POST", "/tasks/{n}/urge", "clerk_a", {}),
    ("POST", "/tasks/cc/{n}/read", "clerk_a", None),
    ("GET", "/instances/{n}", "admin", None),
    ("POST", "/instances/{n}/suspend", "head_a", {}),
    ("POST", "/instances/{n}/terminate", "head_a", {}),
    ("POST", "/instances/{n}/jump", "admin", {"node_id": "apply"}),
    ("POST", "/instances/{n}/cc", "clerk_a", {"user_ids": [1]}),
    ("POST", "/incidents/{n}/retry", "admin", None),
    ("GET", "/definitions/line/versions/{n}", "clerk_a", None),
    ("POST", "/instances/migrate", "admin", {"key": "line", "from_version": 1, "to_version": 99}),
]


def test_unknown_ids_are_404(api: Api, at_review: tuple[int, dict[str, Any]]) -> None:
    instance_id, _review = at_review
    with api.unchanged(instance_id):
        for method, path, user, body in UNKNOWN:
            url = path.format(n=NOBODY)
            response = api.get(url, user) if method == "GET" else api.post(url, user, body)
            refused(response, 404, "not_found", (method, url))


NO_AUTH = [
    ("GET", "/tasks/todo"),
    ("GET", "/tasks/{task}"),
    ("POST", "/tasks/{task}/complete"),
    ("POST", "/tasks/{task}/transfer"),
    ("POST", "/instances"),
    ("GET", "/instances/{instance}"),
    ("POST", "/instances/{instance}/suspend"),
    ("POST", "/definitions"),
    ("POST", "/messages"),
    ("GET", "/history.xes"),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic YWRtaW46c2VjcmV0"],
    ids=["missing", "bad-token", "not-bearer"],
)
def test_missing_or_bad_credentials_are_401(
    api: Api, at_review: tuple[int, dict[str, Any]], authorization: str | None
) -> None:
    instance_id, review = at_review
    headers = {} if authorization is None else {"Authorization": authorization}
    with api.unchanged(instance_id):
        for method, path in NO_AUTH:
            url = BASE + path.format(task=review["id"], instance=instance_id)
            response = api.client.request(method, url, headers=headers, json={"outcome": "approve"})
            refused(response, 401, "unauthenticated", (method, url))
            assert response.headers["www-authenticate"] == "Bearer"


# -- hostile and invalid definitions --


@pytest.mark.parametrize(
    "source",
    [XXE, BILLION_LAUGHS, PARAMETER_ENTITY, XXE.replace('"1.0"', '"1.0" encoding="UTF-8"')],
    ids=["xxe", "billion-laughs", "parameter-entity", "xxe-declared-utf8"],
)
@pytest.mark.parametrize("form", ["raw", "json"])
def test_a_malicious_bpmn_upload_deploys_nothing(api: Api, source: str, form: str) -> None:
    with api.unchanged():
        if form == "raw":
            headers = {"Content-Type": "application/bpmn+xml"}
            response = api.post("/definitions", "admin", content=source.encode(), headers=headers)
        else:
            response = api.post("/definitions", "admin", {"format": "bpmn", "source": source})
        answer = refused(response, 422, "malicious_bpmn")
    assert "passwd" not in str(answer) and "root:" not in str(answer)
    assert api.read("/definitions", "admin") == []


def _bpmn_of_size(size: int) -> bytes:
    """A well-formed BPMN document padded with a comment to ``size`` bytes."""
    head = PERMIT.format(approver="head_a").encode()
    return head + b"<!--" + b"x" * (size - len(head) - 7) + b"-->"


def test_an_oversized_bpmn_upload_is_413(api: Api) -> None:
    headers = {"Content-Type": "application/xml"}
    with api.unchanged():
        for size in (11 * 1024 * 1024, 50 * 1024 * 1024):  # the deploy limit is 10 MiB
            response = api.post(
                "/definitions", "admin", content=_bpmn_of_size(size), headers=headers
            )
            refused(response, 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts the stream
            for _ in range(24):
                yield b"x" * (512 * 1024)

        response = api.post("/definitions", "admin", content=chunks(), headers=headers)
        refused(response, 413, "payload_too_large")
    assert api.read("/definitions", "admin") == []


def test_an_invalid_process_names_the_node(api: Api) -> None:
    with api.unchanged():
        response = api.post(
            "/definitions", "admin", content=DEAD_END.encode(), headers={"Content-Type": "text/xml"}
        )
        answer = refused(response, 422, "invalid_process")
    problems = {(p["code"], p["node"]) for p in answer["details"]["problems"]}
    assert ("dead_end", "stuck") in problems
    assert all(p["message_zh"] and p["message_en"] for p in answer["details"]["problems"])


@pytest.mark.parametrize(
    ("source", "code", "where"),
    [
        ("key: t\nsteps:\n  - {id: a, task: {rolez: [reviewer]}}\n", "invalid_template", "rolez"),
        ("key: t\nsteps: [&a {id: a, task: {}}, *a]\n", "invalid_template", "alias"),
        ("key: t\nsteps:\n  - {id: a, task: {assignee: x}\n", "invalid_template", "line"),
    ],
    ids=["unknown-key", "alias", "syntax"],
)
def test_an_invalid_yaml_template_names_the_place(
    api: Api, source: str, code: str, where: str
) -> None:
    with api.unchanged():
        answer = refused(
            api.post("/definitions", "admin", {"format": "yaml", "source": source}), 422, code
        )
    assert where in answer["message_en"]


def test_a_non_bpmn_or_malformed_upload_is_422(api: Api) -> None:
    headers = {"Content-Type": "application/xml"}
    with api.unchanged():
        for content, code in [
            (b"<definitions", "malformed_xml"),
            (b"\xff\xfe\x00garbage", "malformed_xml"),
            (b"<html><body/></html>", "not_bpmn"),
        ]:
            refused(api.post("/definitions", "admin", content=content, headers=headers), 422, code)
        refused(
            api.post("/definitions", "admin", {"format": "docx", "source": "x"}),
            422,
            "invalid_body",
        )
