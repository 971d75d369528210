"""XES export (IEEE 1849) that pm4py reads back with the right cases and activities."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import require
from xietong.kernel.errors import Forbidden, InvalidInput
from xietong.kernel.workflow import history, operations, returns

from .conftest import Flowbed, line, task

XES = "{http://www.xes-standard.org/}"


def _run_two_cases(bed: Flowbed) -> tuple[int, int]:
    bed.deploy(line("mine", task("a", "rev1", name="受理"), task("b", "boss", name="审批")))
    first = bed.start("mine", business_key="BK-1")
    second = bed.start("mine", business_key="BK-2")
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(first.id, "a").id)
    operations.complete(bed.ctx, bed.actor("boss"), bed.open_task(first.id, "b").id)
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(second.id, "a").id)
    b = bed.open_task(second.id, "b")
    returns.send_back(bed.ctx, bed.actor("boss"), b.id, "a")
    return first.id, second.id


def test_export_is_well_formed_xes(bed: Flowbed) -> None:
    first, second = _run_two_cases(bed)
    data = history.export_xes(bed.ctx, bed.actor("admin"), key="mine")
    root = etree.fromstring(data)
    assert root.tag == f"{XES}log" and root.get("xes.version") == "1849-2016"
    prefixes = {e.get("prefix") for e in root.findall(f"{XES}extension")}
    assert {"concept", "time", "org", "lifecycle"} <= prefixes
    traces = root.findall(f"{XES}trace")
    names = [t.find(f"{XES}string[@key='concept:name']").get("value") for t in traces]
    assert names == [str(first), str(second)]
    events = traces[1].findall(f"{XES}event")
    activities = [e.find(f"{XES}string[@key='concept:name']").get("value") for e in events]
    assert activities == ["受理", "审批（退回）"]
    assert all(e.find(f"{XES}date[@key='time:timestamp']") is not None for e in events)


def test_pm4py_reads_the_export(bed: Flowbed, tmp_path: Path) -> None:
    try:
        import pm4py
    except ImportError:  # pragma: no cover - the test extra installs it
        require(False, "pm4py is not installed (pip install -e '.[test]')")
        raise
    first, second = _run_two_cases(bed)
    path = tmp_path / "log.xes"
    path.write_bytes(history.export_xes(bed.ctx, bed.actor("auditor"), key="mine"))
    frame = pm4py.read_xes(str(path))
    cases = list(frame["case:concept:name"])
    activities = list(frame["concept:name"])
    resources = list(frame["org:resource"])
    assert cases == [str(first)] * 2 + [str(second)] * 2
    assert activities == ["受理", "审批", "受理", "审批（退回）"]
    assert resources == ["rev1", "boss", "rev1", "boss"]
    assert frame["time:timestamp"].is_monotonic_increasing


def test_export_needs_a_selection_and_a_right(bed: Flowbed) -> None:
    with pytest.raises(InvalidInput):
        history.export_xes(bed.ctx, bed.actor("admin"))
    with pytest.raises(Forbidden):
        history.export_xes(bed.ctx, bed.actor("rev1"), key="mine")
