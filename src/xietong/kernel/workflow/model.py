"""The process graph: what BPMN 2.0 XML and the YAML business template both compile to.

A ``ProcessGraph`` is immutable and serialisable (``to_dict`` / ``from_dict``), so a
deployed definition version is stored once as JSON and every running instance keeps the
version it started with. The runtime reads only this model, never the source XML.

Names follow the glossary: multi-instance modes are ``countersign_all`` (会签),
``countersign_any`` (或签), ``vote`` (票签) and ``sequential_sign`` (顺签).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

NodeKind = Literal[
    "start",  # none start event (also message/timer start: see ``trigger``)
    "end",  # none end event: the token is consumed
    "terminate",  # terminate end event: the whole instance ends
    "user_task",
    "service_task",
    "exclusive",  # XOR gateway: first true condition, else the default flow
    "parallel",  # AND gateway: fork all; join waits for every incoming flow
    "inclusive",  # OR gateway: fork every true condition; join waits for what was forked
    "timer",  # intermediate timer catch event, or a boundary timer (``attached_to``)
    "message",  # intermediate message catch event, waits for a correlated message
    "call",  # call activity: runs another process definition and waits for it
]

EXECUTABLE_KINDS: frozenset[str] = frozenset(NodeKind.__args__)  # type: ignore[attr-defined]

MultiMode = Literal["countersign_all", "countersign_any", "vote", "sequential_sign"]
TimeoutAction = Literal["remind", "approve", "reject"]


@dataclass(frozen=True)
class Assignment:
    """Who may work on a user task. Values may be ``${expressions}`` over variables."""

    assignee: str | None = None  # a username
    candidate_users: tuple[str, ...] = ()
    candidate_roles: tuple[str, ...] = ()  # role codes (xietong.kernel.access.Role)
    candidate_department: str | None = None  # department code; None = the instance's


@dataclass(frozen=True)
class MultiInstance:
    """One task per signer. ``signers`` is an expression giving a list of usernames."""

    mode: MultiMode
    signers: str
    # vote: the share (0–1] of the total weight that must approve
    pass_ratio: float | None = None
    # vote: an expression giving {username: weight}; default weight 1 each
    weights: str | None = None
    # the per-instance variable holding this task's signer (BPMN elementVariable)
    element_variable: str | None = None


@dataclass(frozen=True)
class Timer:
    """ISO 8601 ``duration`` (PT2H, P3D), ``date`` (a datetime) or ``cycle`` (R3/PT1H).

    ``working_days``: a duration of whole days counts working days on the kernel
    calendar (P3D = three working days), as Chinese time limits do.
    """

    kind: Literal["duration", "date", "cycle"]
    expression: str
    working_days: bool = False


@dataclass(frozen=True)
class TaskTimeout:
    """超时自动处理: after N working days, remind the holder, or approve or reject."""

    after_working_days: int
    action: TimeoutAction


@dataclass(frozen=True)
class ServiceCall:
    """A service task's call: a registered connector by name, or a webhook URL."""

    connector: str | None = None
    url: str | None = None
    retries: int = 3
    # output variable names the call's JSON result is copied into (empty: all keys)
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    name: str = ""
    assignment: Assignment | None = None
    multi: MultiInstance | None = None
    timer: Timer | None = None
    attached_to: str | None = None  # boundary events: the activity they sit on
    cancel_activity: bool = True  # boundary events: interrupting or not
    message: str | None = None  # message catch: the message name
    correlation_key: str | None = None  # message catch: expression matched on delivery
    called_process: str | None = None  # call activity: the process key to start
    service: ServiceCall | None = None
    default_flow: str | None = None  # gateways (and activities with conditional flows)
    timeout: TaskTimeout | None = None
    form_key: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str
    condition: str | None = None  # an expression; None = unconditional
    name: str = ""


@dataclass(frozen=True)
class ProcessGraph:
    key: str  # the process id in BPMN; versions share a key
    name: str
    nodes: Mapping[str, Node]
    flows: tuple[Flow, ...]

    @cached_property
    def _outgoing(self) -> dict[str, tuple[Flow, ...]]:
        found: dict[str, list[Flow]] = {node_id: [] for node_id in self.nodes}
        for flow in self.flows:
            found.setdefault(flow.source, []).append(flow)
        return {node_id: tuple(flows) for node_id, flows in found.items()}

    @cached_property
    def _incoming(self) -> dict[str, tuple[Flow, ...]]:
        found: dict[str, list[Flow]] = {node_id: [] for node_id in self.nodes}
        for flow in self.flows:
            found.setdefault(flow.target, []).append(flow)
        return {node_id: tuple(flows) for node_id, flows in found.items()}

    @cached_property
    def _boundaries(self) -> dict[str, tuple[Node, ...]]:
        found: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            if node.attached_to:
                found.setdefault(node.attached_to, []).append(node)
        return {host: tuple(nodes) for host, nodes in found.items()}

    def outgoing(self, node_id: str) -> tuple[Flow, ...]:
        return self._outgoing.get(node_id, ())

    def incoming(self, node_id: str) -> tuple[Flow, ...]:
        return self._incoming.get(node_id, ())

    def boundaries(self, node_id: str) -> tuple[Node, ...]:
        return self._boundaries.get(node_id, ())

    def flow(self, flow_id: str) -> Flow:
        return next(flow for flow in self.flows if flow.id == flow_id)

    @property
    def start_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "start" and not n.attached_to]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "nodes": [asdict(node) for node in self.nodes.values()],
            "flows": [asdict(flow) for flow in self.flows],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessGraph:
        nodes = {}
        for raw in data["nodes"]:
            raw = dict(raw)
            for name, kind in (
                ("assignment", Assignment),
                ("multi", MultiInstance),
                ("timer", Timer),
                ("timeout", TaskTimeout),
                ("service", ServiceCall),
            ):
                if raw.get(name) is not None:
                    value = dict(raw[name])
                    for key, item in value.items():
                        if isinstance(item, list):
                            value[key] = tuple(item)
                    raw[name] = kind(**value)
            raw["properties"] = dict(raw.get("properties") or {})
            node = Node(**raw)
            nodes[node.id] = node
        flows = tuple(Flow(**raw) for raw in data["flows"])
        return cls(key=data["key"], name=data["name"], nodes=nodes, flows=flows)


@dataclass(frozen=True)
class Unsupported:
    """An element of a BPMN file outside the executable subset (reported, never dropped)."""

    type: str  # the BPMN element name, e.g. "eventBasedGateway", "signalEventDefinition"
    id: str
    # for an event definition: the event element it sits on, e.g. "boundaryEvent"
    element: str = ""
