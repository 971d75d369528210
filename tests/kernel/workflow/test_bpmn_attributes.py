"""How BPMN attributes of the common modellers map onto the graph, element by element."""

from __future__ import annotations

import pytest

from xietong.kernel.workflow.bpmn import BPMN_NS, XIETONG_NS, ProcessReport, read_bpmn
from xietong.kernel.workflow.model import Node

NAMESPACES = (
    f'xmlns:bpmn="{BPMN_NS}" xmlns:xietong="{XIETONG_NS}" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:flowable="http://flowable.org/bpmn" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"'
)


def process(body: str, *, before: str = "", attrs: str = "") -> ProcessReport:
    xml = (
        f"<bpmn:definitions {NAMESPACES}>{before}"
        f'<bpmn:process id="p" isExecutable="true" {attrs}>{body}</bpmn:process>'
        "</bpmn:definitions>"
    )
    (report,) = read_bpmn(xml.encode())
    return report


def node(element: str, *, before: str = "") -> Node:
    report = process(element, before=before)
    assert report.graph is not None, report.unsupported
    (only,) = report.graph.nodes.values()
    return only


def unsupported(element: str) -> list[tuple[str, str, str]]:
    report = process(element)
    assert report.graph is None
    return [(u.type, u.id, u.element) for u in report.unsupported]


def test_camunda_assignment_and_form() -> None:
    task = node(
        '<bpmn:userTask id="t" name="审&#10;核" camunda:assignee="${initiator}" '
        'camunda:candidateUsers="zhang, li" camunda:candidateGroups="reviewer,approver" '
        'camunda:formKey="review_form"/>'
    )
    assert task.name == "审 核"
    assert task.assignment.assignee == "${initiator}"
    assert task.assignment.candidate_users == ("zhang", "li")
    assert task.assignment.candidate_roles == ("reviewer", "approver")
    assert task.form_key == "review_form"


def test_flowable_and_xietong_precedence() -> None:
    task = node('<bpmn:userTask id="t" flowable:assignee="wang"/>')
    assert task.assignment.assignee == "wang"
    task = node(
        '<bpmn:userTask id="t" camunda:candidateGroups="other" xietong:candidateRoles="reviewer" '
        'xietong:department="430102-wjw" xietong:timeoutDays="3" xietong:timeoutAction="approve"/>'
    )
    assert task.assignment.candidate_roles == ("reviewer",)
    assert task.assignment.candidate_department == "430102-wjw"
    assert (task.timeout.after_working_days, task.timeout.action) == (3, "approve")


def test_bpmn_performers() -> None:
    task = node(
        '<bpmn:userTask id="t"><bpmn:potentialOwner><bpmn:resourceAssignmentExpression>'
        "<bpmn:formalExpression>user(zhang), group(reviewer)</bpmn:formalExpression>"
        "</bpmn:resourceAssignmentExpression></bpmn:potentialOwner></bpmn:userTask>"
    )
    assert task.assignment.candidate_users == ("zhang",)
    assert task.assignment.candidate_roles == ("reviewer",)
    task = node(
        '<bpmn:userTask id="t"><bpmn:potentialOwner><bpmn:resourceRef>tns:r1</bpmn:resourceRef>'
        "</bpmn:potentialOwner></bpmn:userTask>",
        before='<bpmn:resource id="r1" name="approver"/>',
    )
    assert task.assignment.candidate_roles == ("approver",)


def test_zeebe_extension_elements() -> None:
    task = node(
        '<bpmn:userTask id="t"><bpmn:extensionElements>'
        '<zeebe:assignmentDefinition assignee="= initiator" candidateGroups="reviewer"/>'
        '<zeebe:formDefinition formKey="f1"/></bpmn:extensionElements></bpmn:userTask>'
    )
    assert task.assignment.candidate_roles == ("reviewer",)
    assert task.form_key == "f1"
    service = node(
        '<bpmn:serviceTask id="s"><bpmn:extensionElements><zeebe:taskDefinition type="notify"/>'
        "</bpmn:extensionElements></bpmn:serviceTask>"
    )
    assert service.service.connector == "notify"
    call = node(
        '<bpmn:callActivity id="c"><bpmn:extensionElements><zeebe:calledElement processId="sub"/>'
        "</bpmn:extensionElements></bpmn:callActivity>"
    )
    assert call.called_process == "sub"


def test_service_task_sources() -> None:
    external = node('<bpmn:serviceTask id="s" camunda:type="external" camunda:topic="hukou"/>')
    assert external.service.connector == "hukou"
    own = node(
        '<bpmn:serviceTask id="s" xietong:url="https://example.gov.cn/hook" xietong:retries="0" '
        'xietong:outputs="a, b"/>'
    )
    assert (own.service.url, own.service.retries, own.service.outputs) == (
        "https://example.gov.cn/hook",
        0,
        ("a", "b"),
    )
    java = node('<bpmn:serviceTask id="s" camunda:class="org.example.Delegate"/>')
    assert java.service.connector is None
    assert java.properties == {"class": "org.example.Delegate"}


LOOP = '<bpmn:userTask id="t" {task}><bpmn:multiInstanceLoopCharacteristics {loop}>{inner}'
LOOP += "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"


def condition(text: str) -> str:
    return f"<bpmn:completionCondition>{text}</bpmn:completionCondition>"


ANY = "${nrOfCompletedInstances >= 1}"
MODES = [
    ("", 'camunda:collection="${signers}"', "", "countersign_all", None),
    ("", 'isSequential="true" camunda:collection="s"', "", "sequential_sign", None),
    ("", 'camunda:collection="s"', condition(ANY), "countersign_any", None),
    (
        "",
        'camunda:collection="s"',
        condition("${nrOfCompletedInstances &gt; 0}"),
        "countersign_any",
        None,
    ),
    (
        "",
        'camunda:collection="s"',
        condition("${nrOfCompletedInstances == nrOfInstances}"),
        "countersign_all",
        None,
    ),
    (
        "",
        'camunda:collection="s"',
        condition("${nrOfApprovedInstances / nrOfInstances >= .5}"),
        "vote",
        0.5,
    ),
    (
        'xietong:multiMode="vote" xietong:passRatio="0.75" xietong:signers="${s}"',
        "",
        condition(ANY),
        "vote",
        0.75,
    ),
    (
        "",
        'xietong:multiMode="countersign_any" isSequential="true" camunda:signers="s"',
        "",
        "countersign_any",
        None,
    ),
    ("", "", "<bpmn:loopDataInputRef>signers</bpmn:loopDataInputRef>", "countersign_all", None),
]


@pytest.mark.parametrize(("task", "loop", "inner", "mode", "ratio"), MODES)
def test_multi_instance_modes(task: str, loop: str, inner: str, mode: str, ratio: float) -> None:
    multi = node(LOOP.format(task=task, loop=loop, inner=inner)).multi
    assert (multi.mode, multi.pass_ratio) == (mode, ratio)
    assert multi.signers


def test_multi_instance_signers_and_element_variable() -> None:
    multi = node(
        LOOP.format(
            task="",
            loop="",
            inner="<bpmn:extensionElements><zeebe:loopCharacteristics "
            'inputCollection="= approvers" inputElement="approver"/></bpmn:extensionElements>',
        )
    ).multi
    assert (multi.signers, multi.element_variable) == ("approvers", "approver")


def element(tag: str, inner: str = "", attrs: str = "", element_id: str = "e") -> str:
    return f'<bpmn:{tag} id="{element_id}" {attrs}>{inner}</bpmn:{tag}>'


def definition(name: str) -> str:
    return f"<bpmn:{name}/>"


UNSUPPORTED = [
    (LOOP.format(task="", loop="", inner=condition("${x > 2}")), ("completionCondition", "t", "")),
    (
        LOOP.format(task='xietong:multiMode="most"', loop="", inner=""),
        ("xietong:multiMode", "t", ""),
    ),
    (element("userTask", attrs='xietong:timeoutDays="three"'), ("xietong:timeoutDays", "e", "")),
    (
        element("userTask", attrs='xietong:timeoutDays="2" xietong:timeoutAction="skip"'),
        ("xietong:timeoutAction", "e", ""),
    ),
    (
        element("userTask", definition("standardLoopCharacteristics")),
        ("standardLoopCharacteristics", "e", ""),
    ),
    (
        element("serviceTask", definition("multiInstanceLoopCharacteristics")),
        ("multiInstanceLoopCharacteristics", "e", "serviceTask"),
    ),
    (element("userTask", attrs='isForCompensation="true"'), ("isForCompensation", "e", "userTask")),
    (element("scriptTask"), ("scriptTask", "e", "")),
    (element("complexGateway"), ("complexGateway", "e", "")),
    (element("intermediateThrowEvent"), ("intermediateThrowEvent", "e", "")),
    (element("intermediateCatchEvent"), ("intermediateCatchEvent", "e", "")),
    (
        element("intermediateCatchEvent", definition("conditionalEventDefinition")),
        ("conditionalEventDefinition", "e", "intermediateCatchEvent"),
    ),
    (
        element("boundaryEvent", definition("signalEventDefinition"), 'attachedToRef="t"'),
        ("signalEventDefinition", "e", "boundaryEvent"),
    ),
    (
        element("endEvent", definition("errorEventDefinition")),
        ("errorEventDefinition", "e", "endEvent"),
    ),
    (
        element(
            "startEvent", definition("timerEventDefinition") + definition("messageEventDefinition")
        ),
        ("multipleEventDefinitions", "e", "startEvent"),
    ),
    (
        element("startEvent", "<bpmn:eventDefinitionRef>d1</bpmn:eventDefinitionRef>"),
        ("eventDefinitionRef", "e", "startEvent"),
    ),
    (element("choreographyTask"), ("choreographyTask", "e", "")),
    (element("somethingNew"), ("somethingNew", "e", "")),
]


@pytest.mark.parametrize(("element", "expected"), UNSUPPORTED)
def test_unsupported_elements_are_named(element: str, expected: tuple[str, str, str]) -> None:
    assert expected in unsupported(element)


def test_duplicate_ids_are_reported() -> None:
    assert ("duplicateId", "a", "exclusiveGateway") in unsupported(
        '<bpmn:exclusiveGateway id="a"/><bpmn:exclusiveGateway id="a"/>'
    )


def test_events() -> None:
    start = node(
        '<bpmn:startEvent id="s"><bpmn:timerEventDefinition><bpmn:timeCycle>R3/PT1H'
        "</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>"
    )
    assert (start.timer.kind, start.timer.expression, start.properties) == (
        "cycle",
        "R3/PT1H",
        {"trigger": "timer"},
    )
    date = node(
        '<bpmn:intermediateCatchEvent id="w"><bpmn:timerEventDefinition>'
        "<bpmn:timeDate>2030-01-01T09:00:00+08:00</bpmn:timeDate></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>"
    )
    assert (date.kind, date.timer.kind) == ("timer", "date")
    message = node(
        '<bpmn:intermediateCatchEvent id="m"><bpmn:messageEventDefinition messageRef="tns:m1"/>'
        '<bpmn:extensionElements><zeebe:subscription correlationKey="= orderId"/>'
        "</bpmn:extensionElements></bpmn:intermediateCatchEvent>",
        before='<bpmn:message id="m1" name="paid"/>',
    )
    assert (message.message, message.correlation_key) == ("paid", "= orderId")
    orphan = node(
        '<bpmn:intermediateCatchEvent id="m"><bpmn:messageEventDefinition messageRef="nowhere"/>'
        "</bpmn:intermediateCatchEvent>"
    )
    assert orphan.message == "nowhere"
    assert node('<bpmn:endEvent id="e"><bpmn:terminateEventDefinition/></bpmn:endEvent>').kind == (
        "terminate"
    )


def test_boundary_timer_non_interrupting() -> None:
    report = process(
        '<bpmn:userTask id="t" xietong:candidateRoles="reviewer"/>'
        '<bpmn:boundaryEvent id="b" attachedToRef="t" cancelActivity="false">'
        "<bpmn:timerEventDefinition><bpmn:timeDuration>PT4H</bpmn:timeDuration>"
        "</bpmn:timerEventDefinition></bpmn:boundaryEvent>"
    )
    boundary = report.graph.nodes["b"]
    assert (boundary.attached_to, boundary.cancel_activity) == ("t", False)
    assert report.graph.boundaries("t") == (boundary,)


def test_boundary_message_event() -> None:
    report = process(
        '<bpmn:userTask id="t" xietong:candidateRoles="reviewer"/>'
        '<bpmn:boundaryEvent id="b" attachedToRef="t">'
        '<bpmn:messageEventDefinition messageRef="m1"/></bpmn:boundaryEvent>',
        before='<bpmn:message id="m1" name="withdrawn"/>',
    )
    assert report.graph is not None, report.unsupported
    boundary = report.graph.nodes["b"]
    assert (boundary.kind, boundary.message, boundary.attached_to, boundary.cancel_activity) == (
        "message",
        "withdrawn",
        "t",
        True,
    )
    assert report.unsupported == []
    assert report.graph.boundaries("t") == (boundary,)


def test_sub_process_content_is_reported_not_dropped() -> None:
    report = process(
        '<bpmn:subProcess id="sp"><bpmn:startEvent id="s1"/><bpmn:userTask id="t1"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s1" targetRef="t1"/></bpmn:subProcess>'
    )
    assert [(n["id"], n["kind"], n["parent"]) for n in report.nodes] == [
        ("sp", None, None),
        ("s1", "start", "sp"),
        ("t1", "user_task", "sp"),
    ]
    assert report.flows == [
        {"id": "f1", "source": "s1", "target": "t1", "condition": None, "parent": "sp"}
    ]
    assert [(u.type, u.id) for u in report.unsupported] == [("subProcess", "sp")]


def test_artifacts_are_ignored_quietly_and_pool_names_used() -> None:
    report = process(
        '<bpmn:laneSet><bpmn:lane id="l"><bpmn:flowNodeRef>s</bpmn:flowNodeRef></bpmn:lane>'
        '</bpmn:laneSet><bpmn:dataObject id="d"/><bpmn:textAnnotation id="a"><bpmn:text>x'
        '</bpmn:text></bpmn:textAnnotation><bpmn:association id="as" sourceRef="a" '
        'targetRef="s"/><bpmn:startEvent id="s"/>',
        before='<bpmn:collaboration id="c"><bpmn:participant id="pp" name="卫健委" '
        'processRef="p"/></bpmn:collaboration>',
    )
    assert report.unsupported == []
    assert report.name == "卫健委"
    assert [n["id"] for n in report.nodes] == ["s"]


def test_conditions_and_defaults() -> None:
    report = process(
        '<bpmn:exclusiveGateway id="g" default="f2"/><bpmn:endEvent id="e"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="e"><bpmn:conditionExpression>'
        "  ${x > 1}  </bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="e"><bpmn:conditionExpression/>'
        "</bpmn:sequenceFlow>"
    )
    assert report.graph.nodes["g"].default_flow == "f2"
    assert [f.condition for f in report.graph.flows] == ["${x > 1}", None]
    assert report.executable is True
    assert process("", attrs="").to_dict()["executable"] is True
