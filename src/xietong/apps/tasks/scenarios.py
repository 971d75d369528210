"""Scenario templates (场景模板): task trees a task force instantiates with its departments
and a start date.

A template names department *slots* (牵头, 消防, 生态环境 …) and lists its tasks with
offsets and durations in working days and their dependencies. Instantiating fills the
slots with real departments, counts every date with the calendar, and writes the whole
tree in one unit of work: a tree is created entirely or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from xietong.apps.tasks import rights
from xietong.apps.tasks.events import MODULE, TaskCreated
from xietong.apps.tasks.models import Task, TaskCooperation, TaskLink
from xietong.apps.tasks.rules import derive_status, invalid, plan_dates
from xietong.apps.tasks.service import department_by_code, today
from xietong.apps.tasks.views import TaskView, task_views
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    slot: str
    offset: int  # working days after the tree's start
    duration: int  # working days
    content: str = ""
    parent: str | None = None  # None: under the lead task
    depends_on: tuple[str, ...] = ()
    cooperating: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    slots: dict[str, tuple[str, str]]  # slot -> (label, demo department code)
    lead_title: str
    lead_cooperating: tuple[str, ...]
    goal: tuple[str, str, float, float]  # name, unit, baseline, target
    basis: tuple[dict[str, str], ...]
    steps: tuple[Step, ...] = field(default=())

    @property
    def duration(self) -> int:
        return max(step.offset + step.duration for step in self.steps)


JOINT_SUPERVISION = Template(
    key="joint_supervision",
    name="联合监管：餐饮单位跨部门双随机联合抽查",
    description=(
        "市场监管局牵头，消防、生态环境、卫健部门配合，对餐饮单位开展“双随机、一公开”"
        "联合抽查：随机抽取检查对象和执法检查人员（记录随机种子，回避利益冲突），"
        "一次上门、分项检查，结果统一公示。"
    ),
    slots={
        "lead": ("牵头：市场监管部门", "430100-scjg"),
        "fire": ("配合：消防救援部门", "430100-xf"),
        "environment": ("配合：生态环境部门", "430100-sthj"),
        "health": ("配合：卫生健康部门", "430100-wjw"),
        "office": ("督办：政府督查室", "430100-dcs"),
    },
    lead_title="餐饮单位双随机联合抽查",
    lead_cooperating=("fire", "environment", "health"),
    goal=("抽查任务完成率", "%", 0, 100),
    basis=(
        {
            "kind": "policy",
            "title": "国务院关于在市场监管领域全面推行部门联合“双随机、一公开”监管的意见",
            "ref": "国发〔2019〕5号",
        },
        {"kind": "policy", "title": "中华人民共和国食品安全法", "ref": ""},
    ),
    steps=(
        Step(
            "plan",
            "制定联合抽查计划和检查事项清单",
            "lead",
            0,
            3,
            "明确抽查比例、检查事项、各部门检查标准和时间安排。",
        ),
        Step(
            "draw",
            "双随机抽取检查对象和执法检查人员",
            "lead",
            3,
            1,
            "从餐饮单位名录库和执法检查人员名录库中随机抽取，记录随机种子，回避利益冲突。",
            depends_on=("plan",),
        ),
        Step(
            "fire",
            "消防安全检查",
            "fire",
            4,
            10,
            "检查消防通道、灭火器材、燃气管线和电气线路。",
            depends_on=("draw",),
        ),
        Step(
            "environment",
            "油烟排放检查",
            "environment",
            4,
            10,
            "检查油烟净化设施安装运行和排放达标情况。",
            depends_on=("draw",),
        ),
        Step(
            "health",
            "从业人员健康和卫生检查",
            "health",
            4,
            10,
            "检查从业人员健康证明、餐具消毒和公共卫生情况。",
            depends_on=("draw",),
        ),
        Step(
            "publish",
            "汇总检查结果并向社会公示",
            "lead",
            14,
            3,
            "20 个工作日内通过国家企业信用信息公示系统公示抽查结果。",
            depends_on=("fire", "environment", "health"),
        ),
    ),
)

POLICY_PAYOUT = Template(
    key="policy_payout",
    name="政策兑付：惠企政策资金兑付",
    description=(
        "政策主管部门牵头，财政、税务、数据资源部门配合，完成惠企政策从申报到资金拨付、"
        "结果公开的全过程，数据共享核验，减少企业提交材料。"
    ),
    slots={
        "lead": ("牵头：政策主管部门", "430100-swj"),
        "finance": ("配合：财政部门", "430100-cz"),
        "tax": ("配合：税务部门", "430100-sw"),
        "data": ("配合：数据资源部门", "430100-sjzy"),
        "office": ("督办：政府督查室", "430100-dcs"),
    },
    lead_title="惠企政策兑付组织实施",
    lead_cooperating=("finance", "tax", "data"),
    goal=("政策资金按期兑付率", "%", 0, 100),
    basis=({"kind": "policy", "title": "惠企政策兑现实施细则", "ref": ""},),
    steps=(
        Step("guide", "发布申报指南和办事流程", "lead", 0, 3),
        Step("data", "共享企业纳税、参保等核验数据", "data", 0, 5),
        Step("accept", "企业申报受理", "lead", 3, 10, depends_on=("guide",)),
        Step("verify", "纳税信息核验", "tax", 13, 5, depends_on=("accept", "data")),
        Step("review", "资格审核和结果公示", "lead", 18, 5, depends_on=("verify",)),
        Step("pay", "资金拨付", "finance", 23, 5, depends_on=("review",)),
        Step("disclose", "兑付结果公开和绩效评价", "lead", 28, 3, depends_on=("pay",)),
    ),
)

TEMPLATES = {t.key: t for t in (JOINT_SUPERVISION, POLICY_PAYOUT)}


def get_template(key: str) -> Template:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise NotFound.of("场景模板", "Template", key) from None


def describe(template: Template) -> dict[str, Any]:
    return {
        "key": template.key,
        "name": template.name,
        "description": template.description,
        "slots": {
            slot: {"label": label, "example": code}
            for slot, (label, code) in template.slots.items()
        },
        "duration_days": template.duration,
        "steps": [
            {
                "key": s.key,
                "title": s.title,
                "slot": s.slot,
                "offset": s.offset,
                "duration": s.duration,
                "depends_on": list(s.depends_on),
            }
            for s in template.steps
        ],
    }


def instantiate(
    ctx: Context,
    actor: Actor,
    key: str,
    *,
    start: date,
    departments: dict[str, str],
    title: str | None = None,
) -> list[TaskView]:
    """Create the template's tree: a task force's task, the lead task, and each step."""
    authorize(actor, rights.MANAGE)
    template = get_template(key)
    missing = [slot for slot in template.slots if not departments.get(slot)]
    unknown = [slot for slot in departments if slot not in template.slots]
    if missing or unknown:
        raise invalid(
            "template_slots",
            f"请为每个部门角色指定部门：缺少 {'、'.join(missing) or '无'}；"
            f"多余 {'、'.join(unknown) or '无'}",
            f"Give a department for every slot: missing {missing}, unknown {unknown}",
            missing=missing,
            unknown=unknown,
        )
    assert ctx.calendar is not None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        depts: dict[str, Department] = {
            slot: department_by_code(session, code) for slot, code in departments.items()
        }
        lead, office = depts["lead"], depts["office"]
        if not (
            can(actor, rights.MANAGE, rights.guarded(lead.id))
            or can(actor, rights.MANAGE, rights.guarded(office.id))
        ):
            raise Forbidden(
                "只有牵头部门或督办部门的负责人、督办员可以按模板建立任务",
                "Only a head or supervisor of the lead department or the office may instantiate",
                code="not_task_manager",
            )
        region = lead.region_code
        first = ctx.calendar.add_working_days(start, 0, region).day
        now = clock.now()
        made: list[Task] = []

        def add(
            title: str,
            slot: str,
            level: str,
            parent: Task | None,
            offset: int,
            duration: int,
            **extra: Any,
        ) -> Task:
            begin = ctx.calendar.add_working_days(first, offset, region).day if offset else first
            dates = plan_dates(ctx, region, begin, None, duration)
            task = Task(
                parent_id=parent.id if parent else None,
                root_id=(parent.root_id or parent.id) if parent else None,
                level=level,
                title=title,
                department_id=depts[slot].id,
                planned_start=dates.start,
                planned_end=dates.end,
                duration_days=dates.duration,
                dates_estimated=dates.estimated,
                progress=0.0,
                status=derive_status("not_started", 0.0, dates.end, today(), False),
                template_key=template.key,
                version=1,
                created_by=actor.label,
                created_at=now,
                updated_at=now,
                **extra,
            )
            session.add(task)
            session.flush()
            if task.root_id is None:
                task.root_id = task.id
            made.append(task)
            return task

        name, unit, baseline, target = template.goal
        root = add(
            title or template.name,
            "lead",
            "task_force",
            None,
            0,
            template.duration,
            content=template.description,
            basis=list(template.basis),
            goal_name=name,
            goal_unit=unit,
            goal_baseline=baseline,
            goal_target=target,
            supervising_department_id=office.id,
        )
        lead_task = add(template.lead_title, "lead", "lead", root, 0, template.duration)
        for slot in template.lead_cooperating:
            if depts[slot].id != lead.id:
                session.add(TaskCooperation(task_id=lead_task.id, department_id=depts[slot].id))
        by_key: dict[str, Task] = {}
        for step in template.steps:
            by_key[step.key] = add(
                step.title,
                step.slot,
                "cooperating",
                lead_task,
                step.offset,
                step.duration,
                content=step.content,
                weight=step.weight,
            )
        for step in template.steps:
            for on in step.depends_on:
                session.add(TaskLink(task_id=by_key[step.key].id, depends_on_id=by_key[on].id))
        session.flush()
        views = task_views(session, made)
        uow.record(
            "tasks.template.instantiate",
            f"task:{root.id}",
            {
                "template": template.key,
                "start": first.isoformat(),
                "departments": {slot: d.code for slot, d in depts.items()},
                "task_ids": [t.id for t in made],
            },
        )
        for task in made:
            uow.emit(
                TaskCreated(
                    task.id,
                    root.id,
                    depts_code(depts, task),
                    task.title,
                    task.parent_id,
                    task.planned_end.isoformat(),
                ),
                MODULE,
            )
        uow.commit()
    return views


def depts_code(depts: dict[str, Department], task: Task) -> str:
    return next(d.code for d in depts.values() if d.id == task.department_id)
