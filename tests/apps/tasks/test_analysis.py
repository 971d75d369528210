"""The task analysis engine: hand-computed plans, warnings on an injected day, networkx.

Dates are in March 2026, whose 2nd is a Monday: the 2nd–6th and 9th–13th are working
days under the Monday-to-Friday calendar, the 7th and 8th a weekend.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xietong.apps.tasks.analysis import (
    WEEKDAYS,
    InRegion,
    Level,
    Plan,
    Schedule,
    Status,
    TaskSpec,
    WarningOptions,
    WeekdayCalendar,
    WorkingDays,
    allocation_problems,
    analyse,
    blocking_counts,
    capacity,
    find_cycle,
    on_time_rates,
    over_capacity,
    top_blocking,
    warnings,
    what_if,
    worst,
)
from xietong.kernel.calendar import CalendarDay, CalendarSchedule, WorkCalendar
from xietong.kernel.db import Base, Database
from xietong.kernel.errors import InvalidInput


def d(day: int, month: int = 3) -> date:
    return date(2026, month, day)


def t(task_id: str, start: date, end: date, *deps: str, **fields: Any) -> TaskSpec:
    return TaskSpec(id=task_id, planned_start=start, planned_end=end, depends_on=deps, **fields)


def codes(found: list[Any], task_id: str) -> list[str]:
    return [w.code for w in found if w.task_id == task_id]


CHAIN = [t("A", d(2), d(4)), t("B", d(5), d(6), "A"), t("C", d(9), d(10), "B")]
DIAMOND = [
    t("A", d(2), d(3)),
    t("B", d(4), d(6), "A"),
    t("C", d(4), d(4), "A"),
    t("D", d(9), d(9), "B", "C"),
]


# --- schedule ------------------------------------------------------------------------


def test_chain_is_all_critical() -> None:
    timing = Schedule(Plan(CHAIN), "project")
    assert timing.slack == [0, 0, 0]
    assert timing.critical_path_length == 7
    assert timing.critical_path() == ["A", "B", "C"]
    assert timing.critical_paths() == [["A", "B", "C"]]
    last = timing.timing("C")
    assert (last.earliest_start, last.earliest_finish, last.latest_finish) == (d(9), d(10), d(10))
    assert last.critical


def test_diamond_slack_and_critical_path() -> None:
    timing = Schedule(Plan(DIAMOND), "project")
    assert [timing.slack_of(x) for x in "ABCD"] == [0, 0, 2, 0]
    assert timing.critical_path() == ["A", "B", "D"]
    assert timing.critical_paths() == [["A", "B", "D"]]
    assert timing.critical_path_length == 6
    short = timing.timing("C")
    assert (short.latest_start, short.latest_finish) == (d(6), d(6))


def test_equal_branches_give_two_critical_paths_up_to_the_limit() -> None:
    even = [*DIAMOND[:2], t("C", d(4), d(6), "A"), DIAMOND[3]]
    timing = Schedule(Plan(even), "project")
    assert sorted(timing.critical_paths()) == [["A", "B", "D"], ["A", "C", "D"]]
    assert len(timing.critical_paths(limit=1)) == 1


def test_parallel_chains_per_deadline_mode() -> None:
    plan = Plan(
        [
            t("P1", d(2), d(4), goal_ids=("G1",)),
            t("P2", d(5), d(6), "P1", goal_ids=("G1",)),
            t("Q1", d(2), d(3), goal_ids=("G2",)),
            t("Q2", d(4), d(4), "Q1", goal_ids=("G2",)),
        ]
    )
    project = Schedule(plan, "project")
    assert project.slack == [0, 0, 2, 2]
    assert project.critical_paths() == [["P1", "P2"]]
    by_goal = Schedule(plan, "goal")  # each chain is measured against its own goal
    assert by_goal.slack == [0, 0, 0, 0]
    assert by_goal.critical_paths() == [["P1", "P2"], ["Q1", "Q2"]]


def test_a_gap_before_the_successor_is_slack_against_the_goal_only() -> None:
    plan = Plan([t("X1", d(2), d(3), goal_ids=("G",)), t("X2", d(9), d(10), "X1", goal_ids=("G",))])
    assert Schedule(plan, "goal").slack == [3, 0]
    assert Schedule(plan, "task").slack == [0, 0]  # X1 must still meet its own end


def test_a_plan_that_cannot_be_met_has_negative_slack() -> None:
    plan = Plan([t("A", d(2), d(4)), t("B", d(4), d(5), "A")])  # B planned before A ends
    timing = Schedule(plan, "task")
    assert timing.slack == [-1, -1]
    assert timing.late_tasks() == ["B"]
    assert timing.timing("B").earliest_finish == d(6)
    assert timing.critical_paths() == [["A", "B"]]


def test_given_durations_and_milestones() -> None:
    plan = Plan([t("M", d(7), d(7)), t("L", d(9), d(9), "M", duration=3)])
    assert plan.duration == [0, 3]  # a Saturday-only task has no working day
    timing = Schedule(plan, "project")
    assert timing.timing("L").earliest_finish == d(11)
    assert timing.timing("M").earliest_finish == d(9)  # a milestone finishes where it starts


def test_subtasks_inherit_the_goal_of_their_parent() -> None:
    plan = Plan(
        [
            t("root", d(2), d(13), goal_ids=("G",)),
            t("lead", d(2), d(6), parent_id="root"),
            t("help", d(2), d(3), parent_id="lead"),
            t("own", d(2), d(3), parent_id="lead", goal_ids=("H",)),
        ]
    )
    assert plan.goals == [("G",), ("G",), ("G",), ("H",)]


# --- bad input -----------------------------------------------------------------------


def test_find_cycle_names_the_tasks_in_dependency_order() -> None:
    specs = [t("a", d(2), d(2), "c"), t("b", d(2), d(2), "a"), t("c", d(2), d(2), "b")]
    cycle = find_cycle([*specs, t("d", d(2), d(2), "a")])
    assert cycle is not None and sorted(cycle) == ["a", "b", "c"]
    depends = {spec.id: spec.depends_on for spec in specs}
    assert all(cycle[i - 1] in depends[cycle[i]] for i in range(len(cycle)))
    assert find_cycle([t("x", d(2), d(2), "x")]) == ["x"]
    assert find_cycle(CHAIN) is None
    with pytest.raises(InvalidInput) as raised:
        Plan(specs)
    assert raised.value.code == "dependency_cycle"
    assert sorted(raised.value.details["cycle"]) == ["a", "b", "c"]
    assert all(name in raised.value.message_en for name in "abc")


def test_find_cycle_is_iterative_on_long_chains() -> None:
    n = 30_000  # far beyond the recursion limit
    specs = [t(f"n{i}", d(2), d(2), f"n{(i - 1) % n}") for i in range(n)]
    cycle = find_cycle(specs)
    assert cycle is not None and len(cycle) == n
    assert find_cycle(specs[1:]) is None  # n1 depends on the missing n0: no cycle


def test_bad_input_is_refused_naming_every_problem() -> None:
    bad = [
        t("A", d(5), d(2)),
        t("A", d(2), d(3)),
        t("B", d(2), d(3), "nowhere", progress=120),
        t("C", d(2), d(3), parent_id="D"),
        t("D", d(2), d(3), parent_id="C"),
    ]
    with pytest.raises(InvalidInput) as raised:
        Plan(bad)
    found = {error["code"] for error in raised.value.details["errors"]}
    assert found == {
        "end_before_start",
        "duplicate_id",
        "unknown_dependency",
        "progress_range",
        "parent_cycle",
    }


# --- warnings ------------------------------------------------------------------------


def test_yellow_when_behind_plan_by_more_than_the_margin() -> None:
    # Ten working days; on Thursday the 5th three have passed: 30 % expected.
    late = [t("W", d(2), d(13), progress=15, status=Status.IN_PROGRESS)]
    found = warnings(Plan(late), d(5))
    assert codes(found, "W") == ["behind_plan"]
    assert found[0].level is Level.YELLOW and found[0].details["expected"] == 30.0
    assert "30%" in found[0].en and "30%" in found[0].zh
    near = [t("W", d(2), d(13), progress=25)]
    assert warnings(Plan(near), d(5)) == []
    assert codes(warnings(Plan(near), d(5), options=WarningOptions(margin=0)), "W") == [
        "behind_plan"
    ]


def test_yellow_when_due_within_n_working_days() -> None:
    plan = Plan([t("S", d(9), d(11), progress=80)])
    found = warnings(plan, d(6))  # Friday: Mon, Tue, Wed remain
    assert codes(found, "S") == ["due_soon"] and found[0].details["working_days_left"] == 3
    assert warnings(plan, d(6), options=WarningOptions(due_soon_days=2)) == []
    today = warnings(plan, d(11))
    assert today[0].en == "due today" and today[0].details["working_days_left"] == 0
    early = warnings(plan, d(27, 2), options=WarningOptions(due_soon_days=8))  # before the plan
    assert early[0].details["working_days_left"] == 8


def test_red_when_overdue_and_nothing_when_finished() -> None:
    plan = Plan(
        [
            t("R", d(2), d(6), progress=90),
            t("F", d(2), d(6), status=Status.DONE, progress=100),
            t("X", d(2), d(6), status=Status.CLOSED, progress=100),
        ]
    )
    monday = warnings(plan, d(9))
    assert [(w.task_id, w.level, w.code) for w in monday] == [("R", Level.RED, "overdue")]
    assert monday[0].details["working_days_late"] == 1
    saturday = warnings(plan, d(7))  # overdue though no working day has passed
    assert codes(saturday, "R") == ["overdue"] and "working days" not in saturday[0].en


def test_blocked_by_an_overdue_or_a_late_predecessor() -> None:
    overdue = Plan([t("A", d(2), d(4)), t("B", d(5), d(13), "A")])
    found = warnings(overdue, d(5))
    assert codes(found, "A") == ["overdue"]
    assert codes(found, "B") == ["predecessor_overdue"]
    assert worst(found) == {"A": Level.RED, "B": Level.BLOCKED}

    tight = Plan([t("A", d(2), d(4)), t("B", d(4), d(10), "A")])  # B planned to start early
    found = warnings(tight, d(2))
    assert codes(found, "B") == ["predecessor_late"]
    assert found[-1].details == {"predecessor": "A", "earliest_start": "2026-03-05"}

    finished = Plan([t("A", d(2), d(4), status=Status.DONE, progress=100), tight.specs[1]])
    assert warnings(finished, d(2)) == []


# --- calendars -----------------------------------------------------------------------


def test_holidays_and_adjusted_working_days_change_durations_and_dates() -> None:
    specs = [t("A", d(2), d(4), duration=3), t("B", d(5), d(6), "A", duration=2)]
    weekdays = Schedule(Plan(specs, WEEKDAYS), "project")
    assert weekdays.timing("B").earliest_finish == d(6)
    holiday = WeekdayCalendar(holidays=[d(4)])
    shifted = Schedule(Plan(specs, holiday), "project")
    assert shifted.timing("A").earliest_finish == d(5)
    assert shifted.timing("B").earliest_finish == d(9)
    assert Plan([t("W", d(2), d(6))], holiday).duration == [4]
    adjusted = WeekdayCalendar(workdays=[d(7)])  # 调休: Saturday the 7th is worked
    assert Plan([t("W", d(6), d(9))], adjusted).duration == [3]
    assert holiday.add_working_days(d(3), 1) == d(5)
    assert holiday.working_days_between(d(2), d(6)) == 3


def test_the_kernel_work_calendar_plugs_in(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'calendar.db'}")
    tables = [CalendarDay.__table__, CalendarSchedule.__table__]
    Base.metadata.create_all(db.engine, tables=tables)  # type: ignore[arg-type]
    calendar = WorkCalendar(db)
    assert isinstance(calendar, WorkingDays)
    # 2024 National Day: 1–7 October off, Sunday 29 September and Saturday 12 worked.
    specs = [
        t("A", date(2024, 9, 27), date(2024, 10, 12)),
        t("B", date(2024, 9, 30), date(2024, 9, 30), duration=2),
        t("C", date(2024, 10, 8), date(2024, 10, 8), "B"),
    ]
    plan = Plan(specs, calendar)
    assert plan.duration[0] == 8
    assert Plan(specs[:1]).duration == [11]  # Monday to Friday knows no holidays
    timing = Schedule(plan, "project")
    assert timing.timing("B").earliest_finish == date(2024, 10, 8)
    assert timing.timing("C").earliest_start == date(2024, 10, 9)
    with db.write_session() as session:  # a district's own day off, 天心区 only
        session.add(
            CalendarDay(
                region_code="430103",
                day=date(2024, 10, 9),
                is_workday=False,
                name="区级调整",
                source="test",
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    calendar.invalidate()
    assert Plan(specs[:1], InRegion(calendar, "430103")).duration == [7]
    assert Plan(specs[:1], InRegion(calendar, "430102")).duration == [8]
    db.dispose()


# --- load, allocation, on-time -------------------------------------------------------


def test_capacity_counts_remaining_open_work_of_the_lead() -> None:
    plan = Plan(
        [
            t("a", d(2), d(6), department="民政局", weight=3),
            t("b", d(2), d(6), department="民政局", weight=4, progress=50),
            t("c", d(2), d(6), department="民政局", weight=9, status=Status.DONE, progress=100),
            t("d", d(20), d(27), department="民政局", weight=9),  # not started by today
            t("e", d(2), d(6), department="卫健委", weight=1),
        ]
    )
    loads = {x.department: x for x in capacity(plan, {"民政局": 5, "卫健委": 2}, d(4))}
    assert (loads["民政局"].load, loads["民政局"].open_tasks) == (5.0, 2)
    assert not loads["民政局"].over and loads["卫健委"].utilisation == 0.5
    assert [x.department for x in over_capacity(plan, {"民政局": 4.5}, d(4))] == ["民政局"]
    unlimited = capacity(plan, {}, None)
    assert {x.department: (x.load, x.capacity, x.over) for x in unlimited} == {
        "民政局": (14.0, None, False),
        "卫健委": (1.0, None, False),
    }


def test_allocation_problems() -> None:
    plan = Plan(
        [
            t("root", d(2), d(13), owner="王"),
            t(
                "x",
                d(2),
                d(6),
                parent_id="root",
                title="食品抽检（第一批）",
                department="市场监管局",
            ),
            t("y", d(2), d(6), parent_id="root", title="食品抽检(第一批) ", department="卫健委"),
            t("z", d(2), d(6), title="食品抽检(第一批)", department="消防救援支队", owner="李"),
            t("w", d(2), d(6), parent_id="root", department="民政局", cooperating=("民政局",)),
            t("v", d(2), d(6), parent_id="root", status=Status.DONE, department="民政局"),
        ]
    )
    found = {(p.code, p.task_ids) for p in allocation_problems(plan)}
    assert found == {
        ("no_owner", ("x",)),
        ("no_owner", ("y",)),
        ("no_owner", ("w",)),
        ("duplicate_assignment", ("x", "y")),  # not z: under another parent
        ("lead_also_cooperating", ("w",)),
    }
    missing = Plan([t("p", d(2), d(6), owner="王"), t("q", d(2), d(6), parent_id="p", owner="李")])
    assert [(p.code, p.task_ids) for p in allocation_problems(missing)] == [
        ("missing_lead", ("q",))  # the parent has children, so only the leaf must have one
    ]


def test_on_time_rate_per_department() -> None:
    done: dict[str, Any] = {"status": Status.DONE, "progress": 100, "department": "民政局"}
    plan = Plan(
        [
            t("a", d(2), d(6), finished_on=d(6), **done),
            t("b", d(2), d(6), finished_on=d(4), **done),
            t("c", d(2), d(6), finished_on=d(9), **done),
            t("d", d(2), d(6), **done),
            t("e", d(2), d(6), department="民政局"),
        ]
    )
    rate = on_time_rates(plan)["民政局"]
    assert (rate.finished, rate.on_time, rate.undated) == (3, 2, 1)
    assert rate.rate == pytest.approx(2 / 3)


def test_top_blocking_counts_distinct_downstream_tasks() -> None:
    plan = Plan(DIAMOND)
    assert blocking_counts(plan) == [3, 1, 1, 0]  # A's successors meet again at D
    assert top_blocking(plan, 2) == [("A", 3), ("B", 1)]


# --- what-if -------------------------------------------------------------------------

GOAL = [
    t("P", d(2), d(13), goal_ids=("G",)),
    t("X1", d(2), d(3), parent_id="P"),
    t("X2", d(4), d(5), "X1", parent_id="P"),
    t("X3", d(6), d(10), "X2", parent_id="P"),
]


def test_slipping_within_slack_makes_no_goal_late() -> None:
    assert Schedule(Plan(GOAL)).slack_of("X1") == 3
    result = what_if(GOAL, "X1", 3)
    assert result.newly_late_goals == () and result.late_by == {}
    assert result.delayed == {"X1": 3, "X2": 3, "X3": 3}
    assert result.newly_late_tasks == ("X1", "X2", "X3")  # each misses its own date
    diamond = what_if([*DIAMOND[:3], t("D", d(9), d(9), "B", "C", goal_ids=("G",))], "C", 2)
    assert diamond.delayed == {"C": 2} and diamond.late_goals == ()


def test_slipping_past_the_slack_makes_the_goal_late() -> None:
    result = what_if(GOAL, "X2", 4)
    assert result.newly_late_goals == ("G",) and result.late_by == {"G": 1}
    assert result.delayed == {"X2": 4, "X3": 4}


def test_goals_already_late_are_told_apart() -> None:
    late = [*GOAL, t("Y", d(12), d(13), "X3", parent_id="P", duration=5)]
    result = what_if(late, "X1", 0)
    assert result.late_goals == ("G",) and result.newly_late_goals == ()
    with pytest.raises(InvalidInput):
        what_if(GOAL, "nope", 1)
    with pytest.raises(InvalidInput):
        what_if(GOAL, "X1", -1)


def test_analyse_runs_everything_once() -> None:
    result = analyse(GOAL, d(9), capacities={"民政局": 1})
    assert result.schedule.slack_of("X1") == 3
    assert codes(result.warnings, "X1") == ["overdue"]
    assert result.top_blocking[0] == ("X1", 2)


# --- agreement with networkx on random plans ---------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[TaskSpec], list[int], list[int]]:
    """A random plan; returns the specs, their start offsets and durations."""
    size = draw(st.integers(1, 25))
    starts = draw(st.lists(st.integers(0, 12), min_size=size, max_size=size))
    durations = draw(st.lists(st.integers(0, 5), min_size=size, max_size=size))
    specs = []
    for i in range(size):
        preds = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        begin = WEEKDAYS.add_working_days(d(2), starts[i])
        specs.append(
            TaskSpec(
                id=f"t{i}",
                planned_start=begin,
                planned_end=WEEKDAYS.add_working_days(begin, durations[i]),
                duration=durations[i],
                depends_on=tuple(f"t{p}" for p in sorted(preds)),
                goal_ids=(f"g{i % 3}",),
            )
        )
    return specs, starts, durations


def _weighted(specs: list[TaskSpec], starts: list[int], durations: list[int]) -> nx.DiGraph:
    graph = nx.DiGraph()
    first = min(starts)
    for i, spec in enumerate(specs):
        graph.add_edge("source", spec.id, weight=-(starts[i] - first))  # negated: longest
        graph.add_edge(spec.id, "sink", weight=-durations[i])
        for pred in spec.depends_on:
            graph.add_edge(pred, spec.id, weight=-durations[int(pred[1:])])
    return graph


@settings(max_examples=80, deadline=None)
@given(dags())
def test_slack_and_critical_path_length_agree_with_networkx(
    case: tuple[list[TaskSpec], list[int], list[int]],
) -> None:
    specs, starts, durations = case
    graph = _weighted(specs, starts, durations)
    longest = -nx.bellman_ford_path_length(graph, "source", "sink")
    timing = Schedule(Plan(specs), "project")
    assert timing.critical_path_length == longest
    into = nx.single_source_bellman_ford_path_length(graph, "source")
    out = nx.single_source_bellman_ford_path_length(graph.reverse(), "sink")
    for i, spec in enumerate(specs):
        # Through task i the longest path is (to its start) + (from its start to the end).
        through = -into[spec.id] - out[spec.id]
        assert timing.slack[i] == longest - through
    path = timing.critical_path()
    assert all(timing.slack_of(x) == 0 for x in path)


@settings(max_examples=60, deadline=None)
@given(dags())
def test_blocking_counts_and_what_if_agree_with_brute_force(
    case: tuple[list[TaskSpec], list[int], list[int]],
) -> None:
    specs, _starts, _durations = case
    plan = Plan(specs)
    graph = nx.DiGraph([(p, s.id) for s in specs for p in s.depends_on])
    graph.add_nodes_from(s.id for s in specs)
    assert blocking_counts(plan) == [len(nx.descendants(graph, s.id)) for s in specs]
    base = Schedule(plan)
    target = specs[len(specs) // 2]
    slipped = [replace(s, duration=(s.duration or 0) + 2) if s is target else s for s in specs]
    again = Schedule(Plan(slipped))
    expected = {
        s.id: again.ef[i] - base.ef[i] for i, s in enumerate(specs) if again.ef[i] > base.ef[i]
    }
    assert what_if(plan, target.id, 2, baseline=(base.es, base.ef)).delayed == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=25))
def test_find_cycle_agrees_with_networkx(edges: list[tuple[int, int]]) -> None:
    specs = [
        t(f"n{i}", d(2), d(2), *sorted({f"n{a}" for a, b in edges if b == i})) for i in range(10)
    ]
    cycle = find_cycle(specs)
    graph = nx.DiGraph([(f"n{a}", f"n{b}") for a, b in edges])
    assert (cycle is None) == nx.is_directed_acyclic_graph(graph)
    if cycle is not None:
        assert all(graph.has_edge(cycle[i - 1], cycle[i]) for i in range(len(cycle)))
