"""One BPMN flow-node element to one graph ``Node``, or to the reasons it cannot run.

Attributes are read from three places, the first found winning: our own extension
namespace (``xietong:``), then the engine namespaces BPMN files are commonly drawn with
(Camunda 7, Activiti, Flowable: ``camunda:assignee`` and friends), then Zeebe's
extension elements. docs/workflow-definitions.md lists every attribute.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from lxml import etree

from xietong.kernel.workflow.expressions import translate
from xietong.kernel.workflow.model import (
    Assignment,
    MultiInstance,
    MultiMode,
    Node,
    ServiceCall,
    TaskTimeout,
    TimeoutAction,
    Timer,
    Unsupported,
)

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XIETONG_NS = "http://xietong.org/schema/1.0/bpmn"
ENGINE_NAMESPACES = (
    "http://camunda.org/schema/1.0/bpmn",
    "http://activiti.org/bpmn",
    "http://flowable.org/bpmn",
)
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

# 或签: any one signer completes the task; 票签: a share of the signers must approve
_ANY_PATTERN = re.compile(r"^nrOf(Completed|Approved)Instances(>=1|>0|==1)$")
_ALL_PATTERN = re.compile(r"^nrOf(Completed|Approved)Instances(>=|==)nrOfInstances$")
_RATIO_PATTERN = re.compile(
    r"^nrOf(Completed|Approved)Instances/nrOfInstances>=(?P<ratio>\d*\.?\d+)$"
)


@dataclass
class Lookup:
    """Document-wide references a flow node may point at (``messageRef``, ``resourceRef``)."""

    messages: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def is_bpmn(element: Any) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).namespace == BPMN_NS


def clean(text: str | None) -> str:
    """Modellers write names over several lines; a name is one line of words."""
    return " ".join((text or "").split())


def children(element: etree._Element, name: str) -> list[etree._Element]:
    return element.findall(f"{{{BPMN_NS}}}{name}")


def child_text(element: etree._Element, name: str) -> str | None:
    found = element.find(f"{{{BPMN_NS}}}{name}")
    if found is None:
        return None
    return (found.text or "").strip() or None


def strip_prefix(ref: str | None) -> str:
    """``tns:Message_1`` refers to ``Message_1``."""
    return (ref or "").strip().rsplit(":", 1)[-1]


def attribute(element: etree._Element, name: str, engine_name: str | None = None) -> str | None:
    """``xietong:name``, else the engine namespaces' ``engine_name`` (default: the same)."""
    value = element.get(f"{{{XIETONG_NS}}}{name}")
    if value is None:
        for namespace in ENGINE_NAMESPACES:
            value = element.get(f"{{{namespace}}}{engine_name or name}")
            if value is not None:
                break
    return value.strip() if value is not None and value.strip() else None


def zeebe(element: etree._Element, name: str) -> etree._Element | None:
    return element.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}{name}")


def split_list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def event_definitions(element: etree._Element) -> list[etree._Element]:
    found = [child for child in element if is_bpmn(child)]
    return [c for c in found if re.match(r"\w+EventDefinition$|eventDefinitionRef$", local_name(c))]


class _Builder:
    """Collects a node's fields and the reasons it is outside the executable subset."""

    def __init__(self, element: etree._Element, lookup: Lookup) -> None:
        self.element = element
        self.lookup = lookup
        self.id = element.get("id", "")
        self.type = local_name(element)
        self.unsupported: list[Unsupported] = []

    def refuse(self, kind: str, element_type: str = "") -> None:
        self.unsupported.append(Unsupported(type=kind, id=self.id, element=element_type))

    def integer(self, name: str, default: int | None) -> int | None:
        raw = attribute(self.element, name)
        if raw is None:
            return default
        if not raw.isdigit():
            self.refuse(f"xietong:{name}")
            return default
        return int(raw)

    # events ------------------------------------------------------------------------

    def single_definition(self, allowed: tuple[str, ...]) -> etree._Element | None:
        definitions = event_definitions(self.element)
        if len(definitions) > 1:
            self.refuse("multipleEventDefinitions", self.type)
            return None
        if definitions and local_name(definitions[0]) not in allowed:
            self.refuse(local_name(definitions[0]), self.type)
            return None
        return definitions[0] if definitions else None

    def timer(self, definition: etree._Element) -> Timer:
        working = attribute(self.element, "workingDays") or attribute(definition, "workingDays")
        for kind in ("duration", "date", "cycle"):
            text = child_text(definition, "time" + kind.capitalize())
            if text is not None:
                return Timer(kind, text, working_days=working == "true")  # type: ignore[arg-type]
        return Timer(kind="duration", expression="", working_days=working == "true")

    def message(self, definition: etree._Element) -> dict[str, Any]:
        ref = strip_prefix(definition.get("messageRef"))
        correlation = attribute(self.element, "correlationKey") or attribute(
            definition, "correlationKey"
        )
        subscription = zeebe(self.element, "subscription")
        if correlation is None and subscription is not None:
            correlation = subscription.get("correlationKey")
        return {
            "message": self.lookup.messages.get(ref) or ref or None,
            "correlation_key": correlation,
        }

    # tasks -------------------------------------------------------------------------

    def assignment(self) -> Assignment | None:
        element = self.element
        assignee = attribute(element, "assignee")
        users = list(split_list(attribute(element, "candidateUsers")))
        roles = list(split_list(attribute(element, "candidateRoles", "candidateGroups")))
        department = attribute(element, "department")
        zeebe_assignment = zeebe(element, "assignmentDefinition")
        if zeebe_assignment is not None:
            assignee = assignee or zeebe_assignment.get("assignee")
            roles += split_list(zeebe_assignment.get("candidateGroups"))
            users += split_list(zeebe_assignment.get("candidateUsers"))
        if not (assignee or users or roles):
            # BPMN's own performers, the last resort: "user(x), group(y)" or a resource
            for role_name in ("humanPerformer", "potentialOwner"):
                for performer in children(element, role_name):
                    formal = performer.find(f".//{{{BPMN_NS}}}formalExpression")
                    text = (formal.text or "").strip() if formal is not None else ""
                    for item in split_list(text):
                        found = re.fullmatch(r"(user|group)\((.+)\)", item)
                        if found and found.group(1) == "user":
                            users.append(found.group(2).strip())
                        else:
                            roles.append(found.group(2).strip() if found else item)
                    ref = strip_prefix(child_text(performer, "resourceRef"))
                    if ref:
                        roles.append(self.lookup.resources.get(ref) or ref)
        if not (assignee or users or roles or department):
            return None
        return Assignment(
            assignee=assignee,
            candidate_users=tuple(dict.fromkeys(users)),
            candidate_roles=tuple(dict.fromkeys(roles)),
            candidate_department=department,
        )

    def multi(self, loop: etree._Element) -> MultiInstance | None:
        mode = attribute(loop, "multiMode") or attribute(self.element, "multiMode")
        condition = child_text(loop, "completionCondition")
        ratio: float | None = None
        if mode is not None:
            if mode not in get_args(MultiMode):
                self.refuse("xietong:multiMode")
                return None
        elif loop.get("isSequential") == "true":
            mode = "sequential_sign"
        elif condition is None:
            mode = "countersign_all"
        else:
            spelled = re.sub(r"\s+", "", translate(condition))
            if _ANY_PATTERN.match(spelled):
                mode = "countersign_any"
            elif _ALL_PATTERN.match(spelled):
                mode = "countersign_all"
            elif found := _RATIO_PATTERN.match(spelled):
                mode, ratio = "vote", float(found.group("ratio"))
            else:
                self.refuse("completionCondition")
                return None
        raw_ratio = attribute(loop, "passRatio") or attribute(self.element, "passRatio")
        if raw_ratio is not None:
            try:
                ratio = float(raw_ratio)
            except ValueError:
                self.refuse("xietong:passRatio")
                return None
        zeebe_loop = zeebe(loop, "loopCharacteristics")
        signers = (
            attribute(loop, "signers")
            or attribute(self.element, "signers")
            or attribute(loop, "collection")
            or child_text(loop, "loopDataInputRef")
            or (zeebe_loop.get("inputCollection") if zeebe_loop is not None else None)
            or ""
        )
        input_item = loop.find(f"{{{BPMN_NS}}}inputDataItem")
        element_variable = (
            attribute(loop, "elementVariable")
            or (input_item.get("name") or input_item.get("id") if input_item is not None else None)
            or (zeebe_loop.get("inputElement") if zeebe_loop is not None else None)
        )
        return MultiInstance(
            mode=mode,  # type: ignore[arg-type]
            signers=signers.lstrip("=").strip(),
            pass_ratio=ratio,
            weights=attribute(loop, "weights") or attribute(self.element, "weights"),
            element_variable=element_variable,
        )

    def timeout(self) -> TaskTimeout | None:
        days = self.integer("timeoutDays", None)
        action = attribute(self.element, "timeoutAction") or "remind"
        if action not in get_args(TimeoutAction):
            self.refuse("xietong:timeoutAction")
            return None
        return TaskTimeout(after_working_days=days, action=action) if days else None  # type: ignore[arg-type]


# one function per supported element: the Node fields, or None when refused ---------


def _start(b: _Builder) -> dict[str, Any] | None:
    definition = b.single_definition(("messageEventDefinition", "timerEventDefinition"))
    if b.unsupported:
        return None
    fields: dict[str, Any] = {"kind": "start", "form_key": attribute(b.element, "formKey")}
    if definition is not None and local_name(definition) == "timerEventDefinition":
        fields.update(timer=b.timer(definition), properties={"trigger": "timer"})
    elif definition is not None:
        fields.update(b.message(definition), properties={"trigger": "message"})
    return fields


def _end(b: _Builder) -> dict[str, Any] | None:
    definition = b.single_definition(("terminateEventDefinition",))
    if b.unsupported:
        return None
    return {"kind": "end" if definition is None else "terminate"}


def _catch(b: _Builder) -> dict[str, Any] | None:
    definition = b.single_definition(("messageEventDefinition", "timerEventDefinition"))
    if definition is None:
        if not b.unsupported:
            b.refuse(b.type)
        return None
    if local_name(definition) == "timerEventDefinition":
        return {"kind": "timer", "timer": b.timer(definition)}
    return {"kind": "message", **b.message(definition)}


def _boundary(b: _Builder) -> dict[str, Any] | None:
    definition = b.single_definition(("timerEventDefinition", "messageEventDefinition"))
    if definition is None:
        if not b.unsupported:
            b.refuse(b.type)
        return None
    placed = {
        "attached_to": strip_prefix(b.element.get("attachedToRef")) or None,
        "cancel_activity": b.element.get("cancelActivity", "true") != "false",
    }
    if local_name(definition) == "messageEventDefinition":
        return {"kind": "message", **b.message(definition), **placed}
    return {"kind": "timer", "timer": b.timer(definition), **placed}


def _user_task(b: _Builder) -> dict[str, Any] | None:
    loops = children(b.element, "multiInstanceLoopCharacteristics")
    fields = {
        "kind": "user_task",
        "assignment": b.assignment(),
        "multi": b.multi(loops[0]) if loops else None,
        "timeout": b.timeout(),
        "form_key": attribute(b.element, "formKey"),
    }
    form = zeebe(b.element, "formDefinition")
    if fields["form_key"] is None and form is not None:
        fields["form_key"] = form.get("formKey") or form.get("formId")
    return fields


def _service_task(b: _Builder) -> dict[str, Any]:
    element = b.element
    engine_type = attribute(element, "type", "type")
    connector = element.get(f"{{{XIETONG_NS}}}connector")
    if connector is None and engine_type == "external":
        connector = attribute(element, "topic")
    definition = zeebe(element, "taskDefinition")
    if connector is None and definition is not None:
        connector = definition.get("type")
    # a Java class or delegate cannot run here; kept so `process check` shows what it was
    properties = {
        key: value
        for key in ("class", "delegateExpression", "expression")
        if (value := attribute(element, key)) is not None
    }
    call = ServiceCall(
        connector=connector or (engine_type if engine_type not in (None, "external") else None),
        url=element.get(f"{{{XIETONG_NS}}}url"),
        retries=b.integer("retries", 3) or 0,
        outputs=split_list(element.get(f"{{{XIETONG_NS}}}outputs")),
    )
    return {"kind": "service_task", "service": call, "properties": properties}


def _call(b: _Builder) -> dict[str, Any]:
    called = strip_prefix(b.element.get("calledElement")) or None
    zeebe_called = zeebe(b.element, "calledElement")
    if called is None and zeebe_called is not None:
        called = zeebe_called.get("processId")
    return {"kind": "call", "called_process": called}


_HANDLERS: dict[str, Callable[[_Builder], dict[str, Any] | None]] = {
    "startEvent": _start,
    "endEvent": _end,
    "intermediateCatchEvent": _catch,
    "boundaryEvent": _boundary,
    "userTask": _user_task,
    "serviceTask": _service_task,
    "callActivity": _call,
    "exclusiveGateway": lambda b: {"kind": "exclusive"},
    "parallelGateway": lambda b: {"kind": "parallel"},
    "inclusiveGateway": lambda b: {"kind": "inclusive"},
}


def convert(element: etree._Element, lookup: Lookup) -> tuple[Node | None, list[Unsupported]]:
    """The node for a flow-node element, or None and every reason it cannot run."""
    b = _Builder(element, lookup)
    handler = _HANDLERS.get(b.type)
    if handler is None:
        return None, [Unsupported(type=b.type, id=b.id)]
    for loop in children(element, "standardLoopCharacteristics"):
        b.refuse(local_name(loop))
    if b.type != "userTask" and children(element, "multiInstanceLoopCharacteristics"):
        b.refuse("multiInstanceLoopCharacteristics", b.type)
    if element.get("isForCompensation") == "true":
        b.refuse("isForCompensation", b.type)
    fields = handler(b)
    if fields is None or b.unsupported:
        return None, b.unsupported
    node = Node(
        id=b.id,
        name=clean(element.get("name")),
        default_flow=strip_prefix(element.get("default")) or None,
        **fields,
    )
    return node, []
