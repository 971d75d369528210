"""The demo city's task force: 长沙市餐饮油烟和消防安全综合整治专班.

The history is replayed, not faked: the clock is set to each past day in turn, the
departments report progress on that day, and the warning job runs each working day —
so warnings fire on the days they would have, notices are issued and escalated by the
job, and on-time rates come from real finishing dates. Dates are relative to today, so
the demo always shows a task force under way, with some tasks late.

Loading twice changes nothing: the task force's title is the marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from xietong.apps.tasks import closure, inspection, monitor, scenarios, service
from xietong.apps.tasks.models import Task
from xietong.apps.tasks.rules import TaskInput
from xietong.kernel import clock
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service as org
from xietong.kernel.org.models import Department, User

TITLE = "长沙市餐饮油烟和消防安全综合整治专班"
REGION = "430100"
EXTRA_DEPARTMENTS = [
    ("430100-xf", "长沙市消防救援支队", "市消防救援支队", "xf"),
    ("430100-cz", "长沙市财政局", "市财政局", "cz"),
]
HISTORY = 25  # working days since the task force started


@dataclass(frozen=True)
class Plan:
    key: str
    title: str
    dept: str
    start: int  # working days after the task force's start
    days: int
    parent: str | None = None
    cooperating: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    owner: str | None = None
    content: str = ""
    weight: float = 1.0


PLANS = [
    Plan(
        "oil",
        "餐饮单位油烟净化设施排查整治",
        "430100-sthj",
        0,
        35,
        cooperating=("430100-scjg",),
        owner="sthj.approver",
        content="对全市餐饮单位油烟净化设施安装、运行和清洗维护情况开展排查整治。",
        weight=2,
    ),
    Plan(
        "oil_test",
        "芙蓉区、天心区门店油烟检测",
        "430100-sthj",
        0,
        10,
        parent="oil",
        owner="sthj.clerk",
        content="委托第三方检测机构对重点商圈门店油烟排放浓度进行检测。",
    ),
    Plan(
        "oil_fix",
        "油烟净化设施安装整改督导",
        "430100-sthj",
        10,
        12,
        parent="oil",
        depends_on=("oil_test",),
        owner="sthj.clerk",
        content="对检测超标门店下达整改通知，督导安装或更换油烟净化设施。",
        weight=2,
    ),
    Plan(
        "fire",
        "餐饮场所消防安全隐患排查",
        "430100-xf",
        0,
        30,
        cooperating=("430100-zj",),
        owner="xf.approver",
        content="排查燃气管线、灭火器材、疏散通道和电气线路隐患。",
        weight=2,
    ),
    Plan("gas", "燃气管线与灭火器材检查", "430100-xf", 0, 15, parent="fire", owner="xf.clerk"),
    Plan(
        "exit",
        "消防通道占用清理",
        "430100-xf",
        15,
        15,
        parent="fire",
        depends_on=("gas",),
        owner="xf.clerk",
        content="清理占用、堵塞疏散通道和安全出口的杂物及违规搭建。",
    ),
    Plan(
        "licence",
        "食品经营许可与从业人员健康证核查",
        "430100-scjg",
        5,
        40,
        cooperating=("430100-wjw",),
        owner="scjg.approver",
        weight=2,
    ),
    Plan(
        "health",
        "从业人员健康证明核查",
        "430100-wjw",
        5,
        15,
        parent="licence",
        owner="wjw.clerk",
        content="核查餐饮从业人员健康证明持证和有效期情况。",
    ),
    Plan(
        "unlicensed",
        "无证经营餐饮单位查处",
        "430100-scjg",
        20,
        25,
        parent="licence",
        depends_on=("health",),
        owner="scjg.clerk",
    ),
    Plan(
        "review",
        "整治成效复查和结果公示",
        "430100-scjg",
        45,
        15,
        depends_on=("oil", "fire", "licence"),
        content="组织联合复查，汇总整治成效并向社会公示。",
    ),
]

# (working day after the start, task key, percent, text, reason)
REPORTS = [
    (3, "oil_test", 40, "已完成五一广场、坡子街商圈 126 家门店检测", None),
    (6, "gas", 30, "完成芙蓉区 210 家餐饮单位燃气管线检查", None),
    (7, "oil_test", 80, "天心区检测完成，超标门店 23 家", None),
    (9, "oil_test", 100, "检测全部完成，形成超标门店清单并移交整改", None),
    (9, "health", 25, "完成开福区从业人员健康证明抽查", None),
    (12, "gas", 70, "发现灭火器过期 48 处，已现场督促更换", None),
    (14, "oil_fix", 20, "向 23 家超标门店下达整改通知书", None),
    (15, "licence", 30, "许可档案比对完成，疑似无证经营 17 家", None),
    (17, "gas", 100, "燃气管线与灭火器材检查全部完成", None),
    (18, "health", 45, "雨花区、岳麓区核查推进中", None),
    (19, "oil_fix", 45, "已有 11 家门店完成净化设施安装", None),
    (20, "exit", 10, "启动消防通道清理，摸排占用点位 64 处", None),
    (21, "fire", 55, "排查总体过半", None),
    (22, "oil", 60, "排查整治总体进度六成", None),
    (
        23,
        "health",
        40,
        "复核发现部分健康证明系伪造，已移交公安，重新核查",
        "复核发现伪造健康证明，核查数重新计算",
    ),
]


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=clock.CST)


def _ensure_departments(ctx: Context) -> None:
    actor = operator_actor("demo")
    with ctx.db.read() as session:
        have = set(session.scalars(select(Department.code)))
        users = set(session.scalars(select(User.username)))
    for code, name, short, key in EXTRA_DEPARTMENTS:
        if code not in have:
            dept_id = org.create_department(ctx, actor, code, name, REGION, short_name=short).id
        else:
            with ctx.db.read() as session:
                dept_id = session.get_one(
                    Department, session.scalar(select(Department.id).where(Department.code == code))
                ).id
        for suffix, title, roles in (
            ("clerk", "业务科员", [Role.WINDOW_CLERK, Role.REVIEWER]),
            ("approver", "负责人", [Role.APPROVER, Role.HEAD]),
        ):
            username = f"{key}.{suffix}"
            if username in users:
                continue
            user = org.add_user(ctx, actor, username, f"{short}{title}", "demo")
            for role in roles:
                org.grant_membership(ctx, actor, user.id, dept_id, role)


def load_demo_tasks(ctx: Context) -> None:
    with ctx.db.read() as session:
        if session.scalar(select(Task.id).where(Task.title == TITLE)) is not None:
            return
    _ensure_departments(ctx)
    closure.ensure_process(ctx)
    assert ctx.calendar is not None
    calendar = ctx.calendar
    actor = operator_actor("demo")
    today = clock.local_now().date()
    # the working day HISTORY working days before today
    start, counted = today, 0
    while counted < HISTORY:
        start -= timedelta(days=1)
        counted += calendar.is_workday(start, REGION)

    def nth(n: int) -> date:
        return calendar.add_working_days(start, n, REGION).day if n else start

    real = clock.use_clock(clock.FrozenClock(_at(start)))
    try:
        root = service.create_task(
            ctx,
            actor,
            TaskInput(
                title=TITLE,
                department_code="430100-scjg",
                supervising_department_code="430100-dcs",
                planned_start=start,
                duration_days=60,
                goal_name="餐饮单位问题整改完成率",
                goal_unit="%",
                goal_baseline=35,
                goal_target=95,
                goal_current=35,
                basis=(
                    {
                        "kind": "policy",
                        "title": "长沙市大气污染防治行动计划",
                        "ref": "长政发〔2025〕8号",
                    },
                    {
                        "kind": "meeting",
                        "title": "市政府第 12 次常务会议纪要",
                        "ref": "会议纪要〔2026〕12号",
                    },
                ),
                content="聚焦餐饮油烟扰民、消防安全隐患和无证经营三类突出问题，市场监管局牵头，"
                "生态环境、消防救援、卫健、住建部门协同，市政府督查室督办。",
                owner="scjg.approver",
            ),
        )
        ids: dict[str, int] = {}
        for plan in PLANS:
            view = service.create_task(
                ctx,
                actor,
                TaskInput(
                    title=plan.title,
                    department_code=plan.dept,
                    parent_id=ids[plan.parent] if plan.parent else root.id,
                    planned_start=nth(plan.start),
                    duration_days=plan.days,
                    cooperating_codes=plan.cooperating,
                    depends_on=tuple(ids[d] for d in plan.depends_on),
                    owner=plan.owner,
                    content=plan.content,
                    weight=plan.weight,
                ),
            )
            ids[plan.key] = view.id
        reports = sorted(REPORTS, key=lambda r: r[0])
        for n in range(HISTORY + 1):
            day = nth(n)
            clock.use_clock(clock.FrozenClock(_at(day)))
            for when, key, percent, text, reason in reports:
                if when == n:
                    service.report_progress(ctx, actor, ids[key], percent, text, reason=reason)
            if n == 22:
                service.report_progress(
                    ctx, actor, root.id, 45, "专班第三次调度会：总体推进四成半", goal_value=62
                )
            monitor.check_warnings(ctx, on=day)
        for code, cap in (
            ("430100-sthj", 3),
            ("430100-xf", 2),
            ("430100-scjg", 4),
            ("430100-wjw", 2),
        ):
            service.set_capacity(ctx, actor, code, cap)
        _joint_supervision(ctx, nth(8))
    finally:
        clock.use_clock(real)
    monitor.check_warnings(ctx)


def _joint_supervision(ctx: Context, start: date) -> None:
    """A 联合监管 tree from the template, with its 双随机 draw done and published."""
    from stdnum.cn import uscc

    actor = operator_actor("demo")
    views = scenarios.instantiate(
        ctx,
        actor,
        "joint_supervision",
        start=start,
        departments={
            slot: code for slot, (_label, code) in scenarios.JOINT_SUPERVISION.slots.items()
        },
        title="2026 年第一批餐饮单位跨部门双随机联合抽查",
    )
    by_title = {v.title: v for v in views}
    plan = by_title["制定联合抽查计划和检查事项清单"]
    draw_task = by_title["双随机抽取检查对象和执法检查人员"]
    clock.use_clock(clock.FrozenClock(_at(plan.planned_end)))
    service.report_progress(ctx, actor, plan.id, 100, "抽查计划经联席会议审定")
    clock.use_clock(clock.FrozenClock(_at(draw_task.planned_end)))
    names = [
        "湘味",
        "火宫殿",
        "坡子街",
        "文和友",
        "黄记",
        "杨裕兴",
        "玉楼东",
        "徐记",
        "费大厨",
        "炊烟",
    ]
    businesses = []
    for i, name in enumerate(names, start=1):
        body = f"91430102MA4L{i:04d}X"
        businesses.append({"uscc": body + uscc.calc_check_digit(body), "name": f"长沙{name}餐饮店"})
    inspectors = [
        {
            "id": "ZF-SCJG-01",
            "name": "周敏",
            "department": "市市场监管局",
            "conflicts": [businesses[0]["uscc"]],
        },
        {"id": "ZF-SCJG-02", "name": "吴强", "department": "市市场监管局"},
        {"id": "ZF-XF-01", "name": "郑洋", "department": "市消防救援支队"},
        {"id": "ZF-STHJ-01", "name": "孙丽", "department": "市生态环境局"},
        {"id": "ZF-WJW-01", "name": "马静", "department": "市卫健委"},
    ]
    drawn = inspection.draw(
        ctx,
        actor,
        draw_task.id,
        businesses=businesses,
        inspectors=inspectors,
        count=4,
        per_business=2,
        seed="csscjg-2026-03",
    )
    service.report_progress(ctx, actor, draw_task.id, 100, f"已抽取 4 家，随机种子 {drawn.seed}")
    for title in ("消防安全检查", "油烟排放检查", "从业人员健康和卫生检查"):
        step = by_title[title]
        clock.use_clock(clock.FrozenClock(_at(step.planned_end)))
        service.report_progress(ctx, actor, step.id, 100, "检查完成，结果已录入")
    outcomes = ["pass", "rectify", "pass", "fail"]
    for item, outcome in zip(drawn.assignments, outcomes, strict=True):
        inspection.record_result(ctx, actor, drawn.id, item["uscc"], outcome, "")
    inspection.publish(ctx, actor, drawn.id)
    done = by_title["汇总检查结果并向社会公示"]
    clock.use_clock(clock.FrozenClock(_at(done.planned_end)))
    service.report_progress(ctx, actor, done.id, 100, "抽查结果已在国家企业信用信息公示系统公示")
    for view in views[1::-1]:  # the lead task, then the task force's own
        service.report_progress(
            ctx, actor, view.id, 100, "联合抽查全部完成，结果已公示", goal_value=100
        )
