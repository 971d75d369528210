"""Demo processes: one cross-check approval deployed, with a few cases in progress."""

from __future__ import annotations

from pathlib import Path

from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.org import service as org
from xietong.kernel.workflow import definitions, instances

DATA = Path(__file__).parent / "data"
DEMO_PROCESS = "business_license_review"
DEMO_CASES = [
    ("湘味餐饮 设立登记", {"applicant": "长沙湘味餐饮管理有限公司"}),
    ("麓山科技 变更登记", {"applicant": "湖南麓山科技有限公司"}),
    ("星城物流 设立登记", {"applicant": "长沙星城物流有限公司"}),
]


def load_processes(ctx: Context, actor: Actor) -> int:
    """Deploy the demo process once and start its cases in 市场监管局; returns cases started."""
    if any(d.key == DEMO_PROCESS for d in definitions.list_definitions(ctx, actor)):
        return 0
    source = (DATA / "business-license-review.bpmn").read_text(encoding="utf-8")
    definitions.deploy(ctx, actor, source, "bpmn")
    department = next(d for d in org.list_departments(ctx, actor) if d.code == "430100-scjg")
    for business_key, variables in DEMO_CASES:
        instances.start(
            ctx,
            actor,
            DEMO_PROCESS,
            variables=variables,
            business_key=business_key,
            department_id=department.id,
        )
    return len(DEMO_CASES)
