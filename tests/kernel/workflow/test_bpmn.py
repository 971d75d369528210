"""BPMN 2.0 import: every MIWG reference model is read, hostile files are refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from tests.conftest import shared_data
from xietong.cli import app
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.bpmn import BPMN_NS, MAX_BPMN_BYTES, compile_bpmn, read_bpmn
from xietong.kernel.workflow.validate import check

DATA = Path(__file__).resolve().parents[2] / "data" / "workflow"
MIWG = [
    "A.1.0", "A.2.0", "A.2.1", "A.3.0", "A.4.0", "A.4.1", "B.1.0", "B.2.0",
    "C.1.0", "C.2.0", "C.4.0", "C.5.0", "C.7.0", "C.8.0", "C.9.0",
]  # fmt: skip
FLOW_NODE_SUFFIXES = ("Event", "Task", "task", "Gateway", "Activity", "Process", "transaction")
runner = CliRunner()
NS = f'xmlns:bpmn="{BPMN_NS}"'


def miwg(name: str) -> bytes:
    return (shared_data("bpmn-miwg") / f"{name}.bpmn").read_bytes()


def test_the_list_covers_every_miwg_file() -> None:
    assert sorted(p.stem for p in shared_data("bpmn-miwg").glob("*.bpmn")) == MIWG


@pytest.mark.parametrize("name", MIWG)
def test_every_miwg_model_is_read_without_dropping_anything(name: str) -> None:
    data = miwg(name)
    reports = read_bpmn(data)
    root = etree.fromstring(data)
    processes = root.findall(f"{{{BPMN_NS}}}process")
    assert [r.id for r in reports] == [p.get("id") for p in processes]
    for process, report in zip(processes, reports, strict=True):
        # every sequence flow, at any depth, is reported: never silently dropped
        flows = [e.get("id") for e in process.iter(f"{{{BPMN_NS}}}sequenceFlow")]
        assert [f["id"] for f in report.flows] == flows
        # every flow node is reported, with its BPMN type
        nodes = {
            e.get("id"): etree.QName(e).localname
            for e in process.iter()
            if isinstance(e.tag, str)
            and etree.QName(e).namespace == BPMN_NS
            and etree.QName(e).localname.endswith(FLOW_NODE_SUFFIXES)
            and etree.QName(e).localname not in ("completionCondition",)
            and not etree.QName(e).localname.endswith("Ref")
            and e.get("id")
        }
        assert {n["id"]: n["type"] for n in report.nodes} == nodes
        node_ids = set(nodes)
        for item in report.unsupported:
            assert item.type and item.id in node_ids
        assert (report.graph is None) == bool(report.unsupported)


@pytest.mark.parametrize("name", MIWG)
def test_every_miwg_model_through_the_cli(name: str) -> None:
    path = shared_data("bpmn-miwg") / f"{name}.bpmn"
    result = runner.invoke(app, ["process", "check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["processes"]
    assert len(document["processes"]) == len(read_bpmn(path.read_bytes()))
    for process in document["processes"]:
        assert {"id", "name", "nodes", "flows", "unsupported", "executable"} <= set(process)
        assert isinstance(process["executable"], bool)
        assert all({"id", "type", "name"} <= set(node) for node in process["nodes"])
        assert all({"id", "source", "target"} <= set(flow) for flow in process["flows"])
        assert all({"type", "id"} <= set(item) for item in process["unsupported"])
    human = runner.invoke(app, ["process", "check", str(path)])
    assert human.exit_code == 0
    assert "process" in human.stdout


# name: [(process id, executable, nodes, flows, {unsupported type: count})]
FACTS: dict[str, list[tuple[str, bool, int, int, dict[str, int]]]] = {
    "A.1.0": [("WFP-6-", False, 5, 4, {"task": 3})],
    "A.2.0": [("WFP-6-", False, 8, 9, {"task": 4})],
    "A.3.0": [("WFP-6-", False, 10, 8, {"task": 4, "subProcess": 1, "messageEventDefinition": 0})],
    "A.4.0": [("WFP-6-1", False, 4, 3, {"task": 2}), ("WFP-6-2", False, 13, 10, {"task": 4})],
    "B.1.0": [
        ("Process_ba16239e-181e-4b9f-bc5b-0bb2ee973450", False, 3, 2, {"task": 1}),
        ("WFP-6-1", False, 5, 4, {"task": 1}),
        ("WFP-6-2", False, 18, 18, {"subProcess": 2, "messageEventDefinition": 1}),
        ("WFP-0-", False, 3, 2, {"task": 1}),
    ],
    "C.1.0": [
        ("sid-5FBB6CB3-8A7C-42B5-9024-15BB2684EC57", False, 11, 10, {"eventBasedGateway": 1}),
        ("bpmn-miwg-test-case-c.1.0", True, 10, 10, {}),
    ],
    "C.9.0": [("customer_onboarding_en", True, 25, 21, {"sendTask": 1, "businessRuleTask": 1})],
}


@pytest.mark.parametrize("name", sorted(FACTS))
def test_known_facts(name: str) -> None:
    reports = read_bpmn(miwg(name))
    assert [r.id for r in reports] == [fact[0] for fact in FACTS[name]]
    for report, (_, executable, nodes, flows, unsupported) in zip(
        reports, FACTS[name], strict=True
    ):
        assert report.executable is executable
        assert (len(report.nodes), len(report.flows)) == (nodes, flows)
        types = [item.type for item in report.unsupported]
        for kind, count in unsupported.items():
            assert types.count(kind) == count, (report.id, kind, types)


def test_a10_three_tasks_in_a_line() -> None:
    (report,) = read_bpmn(miwg("A.1.0"))
    assert [n["type"] for n in report.nodes].count("task") == 3
    assert report.graph is None


def test_b20_names_event_gateway_and_signals_by_type_and_id() -> None:
    reports = {r.id: r for r in read_bpmn(miwg("B.2.0"))}
    found = {(u.type, u.id, u.element) for u in reports["WFP-6-2"].unsupported}
    assert ("eventBasedGateway", "_be29f267-9d56-46ef-8bbc-e13513b25fce", "") in found
    assert (
        "signalEventDefinition",
        "_25beeb17-acc3-4cca-9590-f1cd2f353434",
        "startEvent",
    ) in found
    assert (
        "linkEventDefinition",
        "_4f5e6e50-d9d0-4f97-959a-d1b8e1e32788",
        "intermediateCatchEvent",
    ) in found
    signals = [u for u in reports["WFP-6-1"].unsupported if u.type == "signalEventDefinition"]
    assert [(u.id, u.element) for u in signals] == [
        ("_5cc02d0f-c090-4e48-8da3-f32cbbca9565", "endEvent")
    ]
    # a sub-process is reported, and so is what is inside it
    nested = [n for n in reports["WFP-6-2"].nodes if n["parent"]]
    assert nested and all(n["parent"] for n in nested)


def test_c10_executable_process_builds_a_graph() -> None:
    reports = {r.id: r for r in read_bpmn(miwg("C.1.0"))}
    graph = reports["bpmn-miwg-test-case-c.1.0"].graph
    assert graph is not None
    assert graph.nodes["approveInvoice"].assignment.assignee == "${approver}"
    assert graph.nodes["prepareBankTransfer"].assignment.candidate_roles == ("accounting",)
    start = graph.nodes["StartEvent_1"]
    assert (start.kind, start.message, start.properties["trigger"]) == (
        "start",
        "invoice-received-C.1.0",
        "message",
    )
    assert graph.flow("invoiceNotApproved").condition == "${!approved}"
    # a Java delegate cannot run here: validation says so, naming the task
    problems = check(graph)
    assert [(p.code, p.node) for p in problems] == [("service_without_call", "archiveInvoice")]
    assert reports["sid-5FBB6CB3-8A7C-42B5-9024-15BB2684EC57"].executable is False


def test_review_bpmn_for_the_benchmark() -> None:
    (report,) = read_bpmn((DATA / "review.bpmn").read_bytes())
    graph = report.graph
    assert graph is not None and report.executable
    assert check(graph) == []
    assert [n.kind for n in graph.nodes.values()] == [
        "start", "user_task", "parallel", "user_task", "user_task", "parallel", "user_task", "end",
    ]  # fmt: skip
    assert graph.nodes["accept"].name == "受理"
    assert graph.nodes["review_a"].assignment.candidate_roles == ("reviewer",)
    assert [f.target for f in graph.outgoing("fork")] == ["review_a", "review_b"]


@pytest.mark.parametrize("name", ["review.bpmn", "approval.bpmn"])
def test_local_files_carry_a_complete_diagram(name: str) -> None:
    root = etree.parse(str(DATA / name)).getroot()
    (report,) = read_bpmn((DATA / name).read_bytes())
    di = "{http://www.omg.org/spec/BPMN/20100524/DI}"
    shapes = {s.get("bpmnElement"): s for s in root.iter(f"{di}BPMNShape")}
    edges = {e.get("bpmnElement"): e for e in root.iter(f"{di}BPMNEdge")}
    assert set(shapes) == {n["id"] for n in report.nodes}
    assert set(edges) == {f["id"] for f in report.flows}
    for shape in shapes.values():
        bounds = shape.find("{http://www.omg.org/spec/DD/20100524/DC}Bounds")
        assert bounds is not None and float(bounds.get("width")) > 0
    for edge in edges.values():
        assert len(edge.findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")) >= 2


def test_approval_bpmn_maps_every_construct() -> None:
    (graph,) = compile_bpmn((DATA / "approval.bpmn").read_bytes())
    assert check(graph) == []
    nodes = graph.nodes
    assert nodes["accept"].timeout.after_working_days == 2
    assert nodes["accept"].form_key == "subsidy_application"
    assert nodes["check_credit"].service.connector == "credit_check"
    assert nodes["check_credit"].service.retries == 5
    assert nodes["check_credit"].service.outputs == ("credit_score",)
    assert nodes["route"].default_flow == "flow_route_review"
    assert graph.flow("flow_route_committee").condition == "${amount > 100000}"
    multi = nodes["committee"].multi
    assert (multi.mode, multi.signers, multi.pass_ratio, multi.element_variable) == (
        "vote",
        "${committee}",
        0.6,
        "member",
    )
    assert nodes["review"].assignment.candidate_roles == ("reviewer",)
    timer = nodes["review_overdue"]
    assert (timer.kind, timer.attached_to, timer.cancel_activity) == ("timer", "review", True)
    assert (timer.timer.expression, timer.timer.working_days) == ("P3D", True)
    assert nodes["rejected"].kind == "terminate"
    wait = nodes["wait_payment"]
    assert (wait.message, wait.correlation_key) == ("payment_confirmed", "${application_no}")
    assert nodes["issue"].called_process == "issue_certificate"


def test_compile_bpmn_refuses_unsupported_elements_by_name() -> None:
    with pytest.raises(InvalidInput) as error:
        compile_bpmn(miwg("A.1.0"))
    assert error.value.code == "unsupported_bpmn"
    assert {i["type"] for i in error.value.details["unsupported"]} == {"task"}
    # C.1.0: only the executable process is compiled, the other pool is not
    assert [g.key for g in compile_bpmn(miwg("C.1.0"))] == ["bpmn-miwg-test-case-c.1.0"]


def test_text_input_with_a_latin1_declaration() -> None:
    text = miwg("A.1.0").decode("iso-8859-1")
    assert read_bpmn(text)[0].id == "WFP-6-"


# hostile and broken input ------------------------------------------------------------

XXE = f"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<bpmn:definitions {NS}><bpmn:process id="p" name="&x;"/></bpmn:definitions>"""
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + f"]><bpmn:definitions {NS}><bpmn:process id='p' name='&lol9;'/></bpmn:definitions>"
).replace("&lol0;", "&lol;")
UTF16 = '<?xml version="1.0" encoding="UTF-16"?>'
PARAMETER_ENTITY = f"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<bpmn:definitions {NS}/>"""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (XXE.encode(), "malicious_bpmn"),
        (LAUGHS.encode(), "malicious_bpmn"),
        (PARAMETER_ENTITY.encode(), "malicious_bpmn"),
        (f"<!DOCTYPE html><bpmn:definitions {NS}/>".encode(), "malicious_bpmn"),
        # a DOCTYPE in UTF-16 escapes a byte scan; the parsed document still shows it
        (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY a "b">]>'
            f"<bpmn:definitions {NS}/>".encode("utf-16"),
            "malicious_bpmn",
        ),
        (random.Random(3).randbytes(4096), "malformed_xml"),
        (b"", "malformed_xml"),
        (b"<bpmn:definitions", "malformed_xml"),
        (f"<bpmn:definitions {NS}>&x;</bpmn:definitions>".encode(), "malformed_xml"),
        (("<a>" * 1000 + "</a>" * 1000).encode(), "malformed_xml"),
        (b"<html><body>hello</body></html>", "not_bpmn"),
        (f"<bpmn:process {NS} id='p'/>".encode(), "not_bpmn"),
        (b'<definitions xmlns="http://www.omg.org/spec/DMN/20180521/MODEL/"/>', "not_bpmn"),
        # the same attacks past the byte scan: the hardened parser must not expand them
        (LAUGHS.replace('<?xml version="1.0"?>', UTF16).encode("utf-16"), "malicious_bpmn"),
        (XXE.replace('<?xml version="1.0"?>', UTF16).encode("utf-16"), "malicious_bpmn"),
    ],
    ids=[
        "xxe",
        "billion-laughs",
        "parameter-entity",
        "doctype",
        "utf16-doctype",
        "random",
        "empty",
        "truncated",
        "undefined-entity",
        "too-deep",
        "html",
        "process-root",
        "dmn",
        "utf16-billion-laughs",
        "utf16-xxe",
    ],
)
def test_hostile_and_broken_input(data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as error:
        read_bpmn(data)
    assert error.value.code == code
    assert error.value.status == 422
    assert error.value.message_zh and error.value.message_en


def test_html_in_cdata_is_not_a_doctype() -> None:
    data = (
        f'<?xml version="1.0"?>\n<!-- a comment --><bpmn:definitions {NS}><bpmn:process id="p">'
        "<bpmn:documentation><![CDATA[<!DOCTYPE html><html/>]]></bpmn:documentation>"
        "</bpmn:process></bpmn:definitions>"
    )
    assert read_bpmn(data.encode())[0].id == "p"
    doctype_after_comment = f"<?xml version='1.0'?><!-- x --> <!DOCTYPE d><bpmn:definitions {NS}/>"
    with pytest.raises(InvalidInput) as error:
        read_bpmn(doctype_after_comment.encode())
    assert error.value.code == "malicious_bpmn"


def test_50_mb_is_refused_before_parsing() -> None:
    data = b"<" + b" " * (50 * 1024 * 1024)
    with pytest.raises(InvalidInput) as error:
        read_bpmn(data)
    assert error.value.code == "bpmn_too_large"
    assert error.value.details == {"size": len(data), "limit": MAX_BPMN_BYTES}


def test_cli_exit_codes(tmp_path: Path) -> None:
    def run(path: Path, *extra: str) -> int:
        return runner.invoke(app, ["process", "check", str(path), *extra]).exit_code

    huge = tmp_path / "huge.bpmn"
    with huge.open("wb") as handle:  # sparse: 50 MB on paper, no time to write
        handle.truncate(50 * 1024 * 1024)
    assert run(huge) == 2
    broken = tmp_path / "broken.bpmn"
    broken.write_bytes(b"<definitions")
    assert run(broken) == 2
    other = tmp_path / "other.xml"
    other.write_bytes(b"<note/>")
    assert run(other, "--json") == 2
    hostile = tmp_path / "xxe.bpmn"
    hostile.write_text(XXE)
    assert run(hostile) == 2
    assert run(tmp_path / "missing.bpmn") == 2
    assert run(DATA / "review.bpmn", "--strict") == 0
    assert run(shared_data("bpmn-miwg") / "A.1.0.bpmn") == 0
    assert run(shared_data("bpmn-miwg") / "A.1.0.bpmn", "--strict") == 1


def test_cli_reports_unsupported_and_problems() -> None:
    path = shared_data("bpmn-miwg") / "C.1.0.bpmn"
    result = runner.invoke(app, ["process", "check", str(path), "--json"])
    processes = {p["id"]: p for p in json.loads(result.stdout)["processes"]}
    runnable = processes["bpmn-miwg-test-case-c.1.0"]
    assert runnable["executable"] is True and runnable["unsupported"] == []
    assert [p["node"] for p in runnable["problems"]] == ["archiveInvoice"]
    other = processes["sid-5FBB6CB3-8A7C-42B5-9024-15BB2684EC57"]
    assert other["problems"] is None
    assert {"type": "eventBasedGateway", "id": "sid-F0D29912-929D-491C-8D23-73BD80CF980A"} in [
        {"type": u["type"], "id": u["id"]} for u in other["unsupported"]
    ]
    human = runner.invoke(app, ["process", "check", str(path)]).stdout
    assert "eventBasedGateway sid-F0D29912-929D-491C-8D23-73BD80CF980A" in human
    assert "archiveInvoice" in human
