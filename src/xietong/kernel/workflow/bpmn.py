"""Read BPMN 2.0 XML safely into process reports and, where it can run, a ``ProcessGraph``.

Any BPMN file is read, whatever tool drew it: every process is reported with its flow
nodes, its sequence flows and every element outside the executable subset (type and
id). A process with no such element also gets its ``graph``; deploy-time checks are
``validate.validate``'s, not this module's.

Uploaded XML is hostile until proven otherwise: the size is checked before parsing,
the parser never resolves entities, loads a DTD or touches the network, and a file
carrying a DOCTYPE at all is refused (a BPMN file has no use for one; entity tricks
such as billion laughs or XXE all need it).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow._bpmn_nodes import (
    BPMN_NS,
    XIETONG_NS,
    Lookup,
    child_text,
    clean,
    convert,
    is_bpmn,
    local_name,
    strip_prefix,
)
from xietong.kernel.workflow.model import Flow, Node, ProcessGraph, Unsupported

__all__ = [
    "BPMN_NS",
    "MAX_BPMN_BYTES",
    "XIETONG_NS",
    "ProcessReport",
    "check_size",
    "compile_bpmn",
    "parse_xml",
    "read_bpmn",
]

MAX_BPMN_BYTES = 10 * 1024 * 1024

# flow nodes the runtime can run (converted by _bpmn_nodes) and those it cannot
_FLOW_NODES = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "implicitThrowEvent",
        "task",
        "userTask",
        "serviceTask",
        "manualTask",
        "scriptTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "callChoreography",
        "choreographyTask",
        "subChoreography",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
# containers of more flow nodes: reported unsupported, their content walked and reported
_CONTAINERS = frozenset({"subProcess", "transaction", "adHocSubProcess"})
# artifacts and data: part of a process but not of its flow, left out quietly
_ARTIFACTS = frozenset(
    {
        "laneSet",
        "lane",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
        "dataInput",
        "dataOutput",
        "ioSpecification",
        "ioBinding",
        "property",
        "textAnnotation",
        "association",
        "group",
        "documentation",
        "extensionElements",
        "auditing",
        "monitoring",
        "supports",
        "correlationSubscription",
        "performer",
        "humanPerformer",
        "potentialOwner",
        "resourceRole",
        "category",
        # a sub-process's own parts; the sub-process is already reported
        "incoming",
        "outgoing",
        "standardLoopCharacteristics",
        "multiInstanceLoopCharacteristics",
        "completionCondition",
    }
)
_SPACE = re.compile(r"\s*")
_WIDE = (  # how XML in UTF-16 or UTF-32 begins, with or without a byte order mark
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
)
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


@dataclass
class ProcessReport:
    """What a BPMN process contains, what of it can run, and its graph if all of it can."""

    id: str
    name: str
    executable: bool
    nodes: list[dict[str, Any]] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)
    graph: ProcessGraph | None = None

    @classmethod
    def from_graph(cls, graph: ProcessGraph, *, executable: bool = True) -> ProcessReport:
        """The report of a graph from elsewhere (a YAML template), for ``process check``."""
        return cls(
            id=graph.key,
            name=graph.name,
            executable=executable,
            nodes=[
                {"id": n.id, "type": n.kind, "name": n.name, "kind": n.kind, "parent": None}
                for n in graph.nodes.values()
            ],
            flows=[
                {"id": f.id, "source": f.source, "target": f.target, "condition": f.condition}
                | {"parent": None}
                for f in graph.flows
            ],
            graph=graph,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "nodes": self.nodes,
            "flows": self.flows,
            "unsupported": [
                {"type": item.type, "id": item.id, "element": item.element}
                for item in self.unsupported
            ],
            "executable": self.executable,
        }


def _refuse(code: str, zh: str, en: str, **details: Any) -> InvalidInput:
    return InvalidInput(zh, en, code=code, details=details or None)


def check_size(size: int, limit: int = MAX_BPMN_BYTES) -> None:
    """Refuse an oversized file before reading it (the CLI checks the file's stat)."""
    if size > limit:
        raise _refuse(
            "bpmn_too_large",
            f"BPMN 文件过大：{size} 字节，上限 {limit} 字节",
            f"BPMN file too large: {size} bytes, the limit is {limit}",
            size=size,
            limit=limit,
        )


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    # text was decoded already: its declaration may name another encoding, now untrue
    return _DECLARATION.sub("", data, count=1).encode("utf-8")


def _declares_dtd(data: bytes) -> bool:
    """A DOCTYPE (the only place entities are declared), in whichever encoding.

    A DOCTYPE can only stand in the prolog, before the root element, so only the prolog
    is scanned: "<!DOCTYPE html>" in the CDATA of an e-mail template is text. A plain
    loop of ``find`` calls keeps the scan linear whatever the input.
    """
    encoding = next((name for start, name in _WIDE if data.startswith(start)), "latin-1")
    text = data.decode(encoding, errors="ignore").lstrip("\ufeff")
    index = 0
    while True:
        index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        if text.startswith("<!DOCTYPE", index):
            return True
        for opening, closing in (("<?", "?>"), ("<!--", "-->")):
            if text.startswith(opening, index):
                end = text.find(closing, index + len(opening))
                if end < 0:
                    return False  # unterminated: the parser will call it malformed
                index = end + len(closing)
                break
        else:
            return False


def parse_xml(data: bytes | str, limit: int = MAX_BPMN_BYTES) -> etree._Element:
    """The root element of a BPMN document, or InvalidInput with a code saying why not."""
    check_size(len(data), limit)
    data = _as_bytes(data)
    malicious = _refuse(
        "malicious_bpmn",
        "BPMN 文件含有 DOCTYPE 或实体声明，已拒绝",
        "BPMN file refused: it carries a DOCTYPE or entity declarations",
    )
    if _declares_dtd(data):
        raise malicious
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as error:
        raise _refuse(
            "malformed_xml",
            f"XML 格式错误：{error}",
            f"malformed XML: {error}",
        ) from None
    if root is None:
        raise _refuse("malformed_xml", "XML 文档为空", "malformed XML: empty document")
    docinfo = root.getroottree().docinfo
    # a second line of defence, should an encoding slip past the scan above
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise malicious
    if etree.QName(root).namespace != BPMN_NS or etree.QName(root).localname != "definitions":
        raise _refuse(
            "not_bpmn",
            f"不是 BPMN 2.0 文件：根元素为 {root.tag}",
            f"not a BPMN 2.0 file: the root element is {root.tag}, not definitions in {BPMN_NS}",
            root=str(root.tag),
        )
    return root


def read_bpmn(data: bytes | str) -> list[ProcessReport]:
    """Every ``bpmn:process`` of the document, in document order."""
    root = parse_xml(data)
    lookup = Lookup(
        messages={
            m.get("id", ""): clean(m.get("name")) or m.get("id", "")
            for m in root.iter(f"{{{BPMN_NS}}}message")
        },
        resources={
            r.get("id", ""): clean(r.get("name")) or r.get("id", "")
            for r in root.iter(f"{{{BPMN_NS}}}resource")
        },
    )
    # a pool's name stands in for an unnamed process, as modellers show it
    pools = {
        strip_prefix(p.get("processRef")): clean(p.get("name"))
        for p in root.iter(f"{{{BPMN_NS}}}participant")
        if p.get("processRef")
    }
    return [
        _read_process(process, lookup, pools) for process in root.findall(f"{{{BPMN_NS}}}process")
    ]


def compile_bpmn(data: bytes | str) -> list[ProcessGraph]:
    """The graphs to deploy: the processes marked executable (all, if none is marked).

    Unlike ``read_bpmn`` this refuses a file whose deployable processes use anything
    outside the executable subset, naming every such element.
    """
    reports = read_bpmn(data)
    chosen = [r for r in reports if r.executable] or reports
    if not chosen:
        raise _refuse("no_process", "BPMN 文件中没有流程", "the BPMN file has no process")
    refused = [r for r in chosen if r.graph is None]
    if refused:
        items = [
            {"process": r.id, "type": u.type, "id": u.id, "element": u.element}
            for r in refused
            for u in r.unsupported
        ]
        listed = ", ".join(f"{i['type']} {i['id']}" for i in items[:10])
        raise _refuse(
            "unsupported_bpmn",
            f"流程含有不支持执行的元素：{listed}",
            f"the process uses elements outside the executable subset: {listed}",
            unsupported=items,
        )
    return [r.graph for r in chosen if r.graph is not None]


def _read_process(process: etree._Element, lookup: Lookup, pools: dict[str, str]) -> ProcessReport:
    process_id = process.get("id", "")
    report = ProcessReport(
        id=process_id,
        name=clean(process.get("name")) or pools.get(process_id, ""),
        executable=process.get("isExecutable", "false").strip() == "true",
    )
    graph_nodes: dict[str, Node] = {}
    graph_flows: list[Flow] = []
    _walk(process, None, lookup, report, graph_nodes, graph_flows)
    if not report.unsupported:
        report.graph = ProcessGraph(
            key=process_id, name=report.name, nodes=graph_nodes, flows=tuple(graph_flows)
        )
    return report


def _walk(
    container: etree._Element,
    parent: str | None,
    lookup: Lookup,
    report: ProcessReport,
    graph_nodes: dict[str, Node],
    graph_flows: list[Flow],
) -> None:
    """Report every flow element of ``container``; sub-processes are walked too."""
    for element in container:
        if not is_bpmn(element):
            continue  # vendor extensions, comments
        kind = local_name(element)
        element_id = element.get("id", "")
        if kind == "sequenceFlow":
            condition = child_text(element, "conditionExpression")
            report.flows.append(
                {
                    "id": element_id,
                    "source": strip_prefix(element.get("sourceRef")),
                    "target": strip_prefix(element.get("targetRef")),
                    "condition": condition,
                    "parent": parent,
                }
            )
            graph_flows.append(
                Flow(
                    id=element_id,
                    source=strip_prefix(element.get("sourceRef")),
                    target=strip_prefix(element.get("targetRef")),
                    condition=condition,
                    name=clean(element.get("name")),
                )
            )
        elif kind in _FLOW_NODES or kind in _CONTAINERS:
            node, unsupported = (None, [Unsupported(kind, element_id)])
            if kind in _FLOW_NODES:
                node, unsupported = convert(element, lookup)
            if node is not None and node.id in graph_nodes:
                node, unsupported = None, [Unsupported("duplicateId", element_id, kind)]
            report.unsupported.extend(unsupported)
            report.nodes.append(
                {
                    "id": element_id,
                    "type": kind,
                    "name": clean(element.get("name")),
                    "kind": node.kind if node is not None else None,
                    "parent": parent,
                }
            )
            if node is not None:
                graph_nodes[node.id] = node
            if kind in _CONTAINERS:
                _walk(element, element_id, lookup, report, graph_nodes, graph_flows)
        elif kind not in _ARTIFACTS:
            # a BPMN element we do not know: say so rather than guess
            report.unsupported.append(Unsupported(kind, element_id))
