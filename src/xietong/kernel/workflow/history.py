"""History out: the event log as IEEE 1849 XES, for process-mining tools (pm4py, ProM).

One trace per instance (``concept:name`` = the instance id), one event per piece of work
done: task completions (with 退回 and 驳回 marked), service calls, timers, messages and
finished sub-processes — each with ``concept:name`` (the activity), ``time:timestamp``,
``org:resource`` (who did it) and ``lifecycle:transition`` = ``complete``. Gateway passes
and bookkeeping rows stay out: they are the engine's steps, not the organisation's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from sqlalchemy import select

from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.store import WfHistory, WfInstance

XES_NS = "http://www.xes-standard.org/"
EXTENSIONS = (
    ("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
    ("Time", "time", "http://www.xes-standard.org/time.xesext"),
    ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
    ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
)
# history kinds that are work done, and how the activity name is marked
EXPORTED = {
    "task.completed": "",
    "send_back": "（退回）",
    "reject_to_applicant": "（驳回）",
    "service.completed": "",
    "timer.fired": "",
    "message.received": "",
    "call.completed": "",
}
MAX_INSTANCES = 100_000


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _attr(parent: ET.Element, kind: str, key: str, value: str) -> None:
    ET.SubElement(parent, kind, {"key": key, "value": value})


def _resource(label: str) -> str:
    """``user:rev1`` → ``rev1``; systems and the worker keep their kind."""
    kind, _, name = label.partition(":")
    return name if kind == "user" and name else label


def _log() -> ET.Element:
    log = ET.Element(
        "log",
        {"xes.version": "1849-2016", "xes.features": "nested-attributes", "xmlns": XES_NS},
    )
    for name, prefix, uri in EXTENSIONS:
        ET.SubElement(log, "extension", {"name": name, "prefix": prefix, "uri": uri})
    trace_globals = ET.SubElement(log, "global", {"scope": "trace"})
    _attr(trace_globals, "string", "concept:name", "__INVALID__")
    event_globals = ET.SubElement(log, "global", {"scope": "event"})
    _attr(event_globals, "string", "concept:name", "__INVALID__")
    _attr(event_globals, "date", "time:timestamp", "1970-01-01T00:00:00.000+00:00")
    _attr(event_globals, "string", "lifecycle:transition", "complete")
    ET.SubElement(log, "classifier", {"name": "Activity", "keys": "concept:name"})
    _attr(log, "string", "concept:name", "xietong workflow history")
    return log


def _event(trace: ET.Element, row: WfHistory) -> None:
    event = ET.SubElement(trace, "event")
    _attr(event, "string", "concept:name", row.activity + EXPORTED[row.kind])
    _attr(event, "date", "time:timestamp", _timestamp(row.at))
    _attr(event, "string", "org:resource", _resource(row.actor))
    _attr(event, "string", "lifecycle:transition", "complete")
    _attr(event, "string", "xietong:kind", row.kind)
    if row.node_id:
        _attr(event, "string", "xietong:node", row.node_id)
    if row.outcome:
        _attr(event, "string", "xietong:outcome", row.outcome)
    if row.on_behalf_of_user_id is not None:
        _attr(event, "int", "xietong:on_behalf_of_user_id", str(row.on_behalf_of_user_id))


def export_xes(
    ctx: Context,
    actor: Actor,
    key: str | None = None,
    instance_ids: Sequence[int] | None = None,
) -> bytes:
    """The history of every instance of process ``key`` (or of ``instance_ids``) as XES."""
    authorize(actor, "workflow.history.export")
    if key is None and not instance_ids:
        raise InvalidInput(
            "请指定流程或实例", "Give a process key or instance ids", code="no_selection"
        )
    log = _log()
    with ctx.db.read() as session:
        chosen = select(WfInstance).order_by(WfInstance.id).limit(MAX_INSTANCES)
        if key is not None:
            chosen = chosen.where(WfInstance.process_key == key)
        if instance_ids:
            chosen = chosen.where(WfInstance.id.in_(list(instance_ids)))
        instances = {row.id: row for row in session.scalars(chosen)}
        for batch in _batches(list(instances), 500):
            rows = session.scalars(
                select(WfHistory)
                .where(WfHistory.instance_id.in_(batch), WfHistory.kind.in_(list(EXPORTED)))
                .order_by(WfHistory.instance_id, WfHistory.id)
            )
            traces: dict[int, ET.Element] = {}
            for row in rows:
                trace = traces.get(row.instance_id)
                if trace is None:
                    trace = ET.SubElement(log, "trace")
                    _attr(trace, "string", "concept:name", str(row.instance_id))
                    instance = instances[row.instance_id]
                    _attr(trace, "string", "xietong:process", instance.process_key)
                    if instance.business_key:
                        _attr(trace, "string", "xietong:business_key", instance.business_key)
                    traces[row.instance_id] = trace
                _event(trace, row)
    ET.indent(log)
    return ET.tostring(log, encoding="utf-8", xml_declaration=True)


def _batches(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
