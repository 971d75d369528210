"""双随机一公开 (random inspection): random businesses, random inspectors, public results.

A draw takes the candidate businesses (名录库, by 统一社会信用代码) and inspectors (执法
检查人员名录库, each with the businesses they must not inspect: relatives, former
employers — 利益冲突), and a seed. Businesses are drawn first, then for each business
its inspectors from those without a conflict with it. The seed, the candidates as
given and the result are stored, so anyone can redo the draw (``replay``) and check
that it was not arranged. Results are recorded per business and, once all are in,
published; the public page needs no login.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from stdnum.cn import uscc as uscc_number
from stdnum.exceptions import ValidationError

from xietong.apps.tasks import rights
from xietong.apps.tasks.models import InspectionDraw
from xietong.apps.tasks.rules import invalid
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, NotFound
from xietong.kernel.uow import UnitOfWork

RESULTS = {
    "pass": "未发现问题",
    "rectify": "发现问题，责令整改",
    "fail": "发现问题，依法处理",
    "closed": "未发现经营（已关闭）",
}
MAX_CANDIDATES = 5000


@dataclass(frozen=True)
class DrawView:
    id: int
    task_id: int
    seed: str
    assignments: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    results: dict[str, Any]
    drawn_by: str
    drawn_at: Any
    published_at: Any

    @classmethod
    def of(cls, row: InspectionDraw) -> DrawView:
        return cls(
            row.id,
            row.task_id,
            row.seed,
            list(row.assignments),
            list(row.excluded),
            dict(row.results or {}),
            row.drawn_by,
            row.drawn_at,
            row.published_at,
        )


def _clean_pool(
    businesses: list[dict[str, Any]], inspectors: list[dict[str, Any]]
) -> dict[str, Any]:
    if not businesses or not inspectors:
        raise invalid(
            "empty_pool", "检查对象和检查人员名录都不能为空", "Both pools must be non-empty"
        )
    if len(businesses) > MAX_CANDIDATES or len(inspectors) > MAX_CANDIDATES:
        raise invalid("pool_too_large", "名录过大", f"At most {MAX_CANDIDATES} candidates")
    clean_businesses = []
    for item in businesses:
        try:
            code = uscc_number.validate(str(item.get("uscc", "")))
        except ValidationError:
            raise invalid(
                "invalid_uscc",
                f"统一社会信用代码无效：{item.get('uscc')}",
                f"Invalid unified social credit code: {item.get('uscc')}",
            ) from None
        name = str(item.get("name", "")).strip()
        if not name:
            raise invalid("missing_value", "检查对象名称不能为空", "A business needs a name")
        clean_businesses.append({"uscc": code, "name": name[:200]})
    if len({b["uscc"] for b in clean_businesses}) < len(clean_businesses):
        raise invalid("duplicate_business", "检查对象重复", "A business is listed twice")
    clean_inspectors = []
    for item in inspectors:
        ident = str(item.get("id", "")).strip()
        name = str(item.get("name", "")).strip()
        if not ident or not name:
            raise invalid(
                "missing_value", "检查人员须有编号和姓名", "An inspector needs an id and a name"
            )
        conflicts = sorted({str(c).strip().upper() for c in item.get("conflicts", [])})
        clean_inspectors.append(
            {
                "id": ident[:64],
                "name": name[:100],
                "department": str(item.get("department", ""))[:100],
                "conflicts": conflicts,
            }
        )
    if len({i["id"] for i in clean_inspectors}) < len(clean_inspectors):
        raise invalid("duplicate_inspector", "检查人员编号重复", "An inspector id is listed twice")
    return {
        "businesses": sorted(clean_businesses, key=lambda b: b["uscc"]),
        "inspectors": sorted(clean_inspectors, key=lambda i: i["id"]),
    }


def replay(pool: dict[str, Any], seed: str, count: int, per_business: int) -> tuple[list, list]:
    """The draw itself: deterministic given the pool (sorted) and the seed."""
    rng = random.Random(seed)
    businesses = pool["businesses"]
    if count > len(businesses):
        raise invalid(
            "not_enough_businesses",
            f"抽取数量 {count} 超过名录中的 {len(businesses)} 家",
            f"Cannot draw {count} of {len(businesses)} businesses",
        )
    chosen = rng.sample(businesses, count)
    assignments, excluded = [], []
    for business in sorted(chosen, key=lambda b: b["uscc"]):
        eligible = []
        for inspector in pool["inspectors"]:
            if business["uscc"] in inspector["conflicts"]:
                excluded.append(
                    {
                        "uscc": business["uscc"],
                        "inspector": inspector["id"],
                        "reason": "利益冲突回避",
                    }
                )
            else:
                eligible.append(inspector)
        if len(eligible) < per_business:
            raise invalid(
                "not_enough_inspectors",
                f"{business['name']} 可选检查人员不足 {per_business} 人（已回避利益冲突）",
                f"Fewer than {per_business} inspectors without a conflict for {business['uscc']}",
            )
        picked = rng.sample(eligible, per_business)
        assignments.append(
            {
                "uscc": business["uscc"],
                "name": business["name"],
                "inspectors": [
                    {"id": i["id"], "name": i["name"], "department": i["department"]}
                    for i in picked
                ],
            }
        )
    return assignments, excluded


def _require(session: Any, actor: Actor, task_id: int) -> None:
    task = rights.load_visible(session, actor, task_id)
    depts = {t.department_id for t in rights.chain(session, task)}
    if not any(can(actor, rights.INSPECT, rights.guarded(d)) for d in depts):
        raise Forbidden(
            "只有任务所在部门的负责人、督办员可以组织抽查",
            "Only a head or supervisor of the task's department may run the draw",
            code="not_task_manager",
        )


def draw(
    ctx: Context,
    actor: Actor,
    task_id: int,
    *,
    businesses: list[dict[str, Any]],
    inspectors: list[dict[str, Any]],
    count: int,
    per_business: int = 2,
    seed: str | None = None,
) -> DrawView:
    authorize(actor, rights.INSPECT)
    if not 1 <= count <= MAX_CANDIDATES or not 1 <= per_business <= 10:
        raise invalid("invalid_count", "抽取数量无效", "Invalid counts")
    seed = (seed or secrets.token_hex(16)).strip()
    if not 1 <= len(seed) <= 64:
        raise invalid(
            "invalid_seed", "随机种子须为 1–64 个字符", "The seed must be 1–64 characters"
        )
    pool = _clean_pool(businesses, inspectors)
    assignments, excluded = replay(pool, seed, count, per_business)
    with UnitOfWork(ctx, actor) as uow:
        _require(uow.session, actor, task_id)
        row = InspectionDraw(
            task_id=task_id,
            seed=seed,
            pool=pool,
            assignments=assignments,
            excluded=excluded,
            results={},
            drawn_by=actor.label,
            drawn_at=clock.now(),
        )
        uow.session.add(row)
        uow.session.flush()
        uow.record(
            "tasks.inspection.draw",
            f"task:{task_id}",
            {
                "draw_id": row.id,
                "seed": seed,
                "count": count,
                "per_business": per_business,
                "businesses": [a["uscc"] for a in assignments],
                "inspectors": {a["uscc"]: [i["id"] for i in a["inspectors"]] for a in assignments},
            },
        )
        view = DrawView.of(row)
        uow.commit()
    return view


def record_result(
    ctx: Context, actor: Actor, draw_id: int, uscc: str, result: str, note: str = ""
) -> DrawView:
    authorize(actor, rights.INSPECT)
    if result not in RESULTS:
        raise invalid(
            "invalid_result",
            f"检查结果应为 {'/'.join(RESULTS)}",
            f"Result must be one of {list(RESULTS)}",
        )
    with UnitOfWork(ctx, actor) as uow:
        row = _load(uow.session, draw_id)
        _require(uow.session, actor, row.task_id)
        if row.published_at is not None:
            raise Conflict("结果已公示，不能修改", "Results are published", code="published")
        code = uscc.strip().upper()
        if code not in {a["uscc"] for a in row.assignments}:
            raise invalid("not_drawn", f"该企业未被抽中：{uscc}", f"Not drawn: {uscc}")
        row.results = {
            **row.results,
            code: {"result": result, "label": RESULTS[result], "note": note[:1000]},
        }
        uow.record(
            "tasks.inspection.result",
            f"task:{row.task_id}",
            {"draw_id": row.id, "uscc": code, "result": result},
        )
        uow.session.flush()
        view = DrawView.of(row)
        uow.commit()
    return view


def publish(ctx: Context, actor: Actor, draw_id: int) -> DrawView:
    authorize(actor, rights.INSPECT)
    with UnitOfWork(ctx, actor) as uow:
        row = _load(uow.session, draw_id)
        _require(uow.session, actor, row.task_id)
        if row.published_at is not None:
            raise Conflict("结果已公示", "Already published", code="published")
        missing = [a["uscc"] for a in row.assignments if a["uscc"] not in row.results]
        if missing:
            raise Conflict(
                f"还有 {len(missing)} 家的检查结果未录入，不能公示",
                f"{len(missing)} results are missing",
                code="results_incomplete",
                details={"missing": missing},
            )
        row.published_at = clock.now()
        uow.record("tasks.inspection.publish", f"task:{row.task_id}", {"draw_id": row.id})
        uow.session.flush()
        view = DrawView.of(row)
        uow.commit()
    return view


def _load(session: Any, draw_id: int) -> InspectionDraw:
    row = session.get(InspectionDraw, draw_id)
    if row is None:
        raise NotFound.of("抽查", "Draw", draw_id)
    return row


def get_draw(ctx: Context, actor: Actor, draw_id: int) -> DrawView:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        row = _load(session, draw_id)
        rights.load_visible(session, actor, row.task_id)
        return DrawView.of(row)


def public_results(ctx: Context, actor: Actor, draw_id: int) -> dict[str, Any]:
    """The published results (一公开): anyone may read them, and redo the draw."""
    authorize(actor, rights.PUBLIC_RESULTS)
    with ctx.db.read() as session:
        row = session.get(InspectionDraw, draw_id)
        if row is None or row.published_at is None:
            raise NotFound.of("抽查结果", "Published results", draw_id)
        return {
            "draw_id": row.id,
            "seed": row.seed,
            "drawn_at": row.drawn_at,
            "published_at": row.published_at,
            "pool": {
                "businesses": row.pool["businesses"],
                "inspectors": [
                    {"id": i["id"], "name": i["name"], "department": i["department"]}
                    for i in row.pool["inspectors"]
                ],
            },
            "excluded": list(row.excluded),
            "items": [{**a, **row.results.get(a["uscc"], {})} for a in row.assignments],
        }


def draws_for(ctx: Context, actor: Actor, task_id: int) -> list[DrawView]:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        rights.load_visible(session, actor, task_id)
        return [
            DrawView.of(r)
            for r in session.scalars(
                select(InspectionDraw)
                .where(InspectionDraw.task_id == task_id)
                .order_by(InspectionDraw.id)
            )
        ]
