"""Demo content for 长沙市: the routing table, the category model, the knowledge base,
and tickets in every state — some weeks old, so the SLA watch and the hotspot page
have something to show.

The model is trained by the classifier's ``ensure_demo_model`` (on the shared real
messages when they are beside the repo, else on the project's own demo messages). The
real replies of ``gov-messages/replies.csv`` and the messages of ``hot-issues.csv`` are
read from there at demo time — never copied into the repository. Their anonymised
districts (A1区 … A9区) are mapped onto 长沙's nine districts so they land somewhere
on the demo map. Safe to run twice: it does nothing when demo tickets exist.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sqlalchemy import func, select

from xietong.apps.hotline import _model, dispatch, handling, intake, knowledge, text
from xietong.apps.hotline._common import department_code
from xietong.apps.hotline.models import Route, Ticket
from xietong.apps.hotline.sla import check_sla
from xietong.kernel import clock
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.auth import actor_from_user_id
from xietong.kernel.context import Context
from xietong.kernel.org import service as org

log = logging.getLogger(__name__)

# category → the 长沙市 department that handles it city-wide
CITY_ROUTES = {
    "城乡建设": "430100-zj",
    "环境保护": "430100-sthj",
    "交通运输": "430100-jt",
    "教育文体": "430100-jy",
    "劳动和社会保障": "430100-rs",
    "商贸旅游": "430100-swj",
    "卫生计生": "430100-wjw",
}
# A district department that takes its district's share of one category.
DISTRICT_DEPARTMENT = ("430104-zj", "长沙市岳麓区住房和城乡建设局", "岳麓区住建局", "430104")
DISTRICT_USER = ("ylzj.clerk", "岳麓区住建局（窗口受理员）")
DISTRICTS = [
    "430102",
    "430103",
    "430104",
    "430105",
    "430111",
    "430112",
    "430121",
    "430181",
    "430182",
]

FAQ = [
    (
        "住房公积金提取需要哪些材料",
        "购房后想提取住房公积金，需要准备什么材料，在哪里办理？",
        "购房提取住房公积金需提供身份证、购房合同或不动产权证书、购房发票等材料，可通过长沙住房公积金"
        "中心网上服务大厅或各管理部办理，符合条件的当日到账。",
        "城乡建设",
    ),
    (
        "社保卡丢失如何补办",
        "社保卡丢了怎么挂失补办？要多久？",
        "可拨打 12333 或通过“湖南智慧人社”办理临时挂失，再持身份证到任一社保卡服务网点补办，"
        "即时制卡网点当场领卡。",
        "劳动和社会保障",
    ),
    (
        "夜间施工噪音扰民怎么投诉",
        "小区旁边工地晚上十点以后还在施工，噪音很大，怎么处理？",
        "夜间（22 时至次日 6 时）施工须取得夜间施工许可。未经许可的，可拨打 12345 或向所在区"
        "生态环境部门反映，执法人员将现场核查并依法处理。",
        "环境保护",
    ),
    (
        "小学入学报名时间",
        "今年小学新生入学什么时候报名？需要房产证吗？",
        "长沙市义务教育阶段新生入学报名一般在每年 6 月进行，按“划片入学”原则，需提供户口簿、房产证"
        "或租赁备案等材料，具体以各区教育局公告为准。",
        "教育文体",
    ),
]


@dataclass(frozen=True)
class DemoTicket:
    text: str
    title: str
    district: str | None
    type: str | None
    category: str  # where a dispatcher sends it when the model is unsure
    days_ago: int
    ending: str  # dispatched, accepted, replied, closed, reopened, escalated, sent_back,
    # extension, pending, overdue


TICKETS = [
    DemoTicket(
        "梅溪湖二期某工地每天晚上十一点后还在打桩施工，噪音非常大，孩子无法入睡，请尽快处理。",
        "梅溪湖工地夜间施工噪音扰民",
        "430104",
        "complaint",
        "环境保护",
        0,
        "dispatched",
    ),
    DemoTicket(
        "麓谷街道一小区门口的人行道被电动车占满，老人出行很不方便，建议增设非机动车停放点。",
        "人行道被电动车占用",
        "430104",
        "suggestion",
        "交通运输",
        1,
        "accepted",
    ),
    DemoTicket(
        "我在某公司工作两年，公司拖欠了三个月工资至今未发，找老板也不理，请劳动监察部门帮忙。",
        "公司拖欠工资三个月",
        "430111",
        "complaint",
        "劳动和社会保障",
        3,
        "replied",
    ),
    DemoTicket(
        "请问在长沙缴纳社保满多少年可以给孩子办理入学？外地户口需要哪些材料？",
        "外地户口孩子入学咨询",
        "430105",
        "consultation",
        "教育文体",
        6,
        "closed",
    ),
    DemoTicket(
        "小区楼下的餐馆油烟直排，整栋楼都是油烟味，多次反映没有改善。",
        "餐馆油烟直排扰民",
        "430102",
        "complaint",
        "环境保护",
        8,
        "reopened",
    ),
    DemoTicket(
        "我们小区的电梯经常困人，物业一直说在维修，已经三个月了还没有解决。",
        "小区电梯频繁故障",
        "430103",
        "help",
        "城乡建设",
        12,
        "escalated",
    ),
    DemoTicket(
        "某药店销售过期药品，还不给退，举报该药店。",
        "药店销售过期药品",
        "430121",
        "report",
        "卫生计生",
        2,
        "sent_back",
    ),
    DemoTicket(
        "老旧小区改造后雨水管网没有接通，一下雨地下车库就进水，请住建部门协调处理。",
        "老旧小区改造后车库进水",
        "430104",
        "help",
        "城乡建设",
        2,
        "extension",
    ),
    DemoTicket(
        "建议在星沙大道增加一条公交线路直达地铁站，现在上班通勤要换乘两次。",
        "建议增设直达地铁站的公交线路",
        "430121",
        "suggestion",
        "交通运输",
        10,
        "overdue",
    ),
    DemoTicket(
        "想咨询一下开一家奶茶店需要办哪些证，在哪里办理？",
        "开奶茶店需要办理哪些证照",
        None,
        "consultation",
        "商贸旅游",
        0,
        "pending",
    ),
]

# Local texts for the hotspot page when the shared data is not beside the repo.
HOTSPOT_TEXTS = [
    ("梅溪湖工地夜间施工噪音太大，晚上无法休息", "430104"),
    ("梅溪湖附近工地半夜打桩噪音扰民", "430104"),
    ("梅溪湖二期工地晚上施工噪音问题", "430104"),
    ("五一广场周边共享单车乱停乱放堵塞人行道", "430102"),
    ("五一广场地铁口共享单车乱停放", "430102"),
]


def _user_actor(ctx: Context, username: str) -> Actor:
    user = org.get_user_by_username(ctx, username)
    actor = actor_from_user_id(ctx, user.id) if user else None
    if actor is None:
        raise RuntimeError(f"demo user {username} missing")
    return actor


def _clerk_for(ctx: Context, department_code: str) -> Actor:
    if department_code == DISTRICT_DEPARTMENT[0]:
        return _user_actor(ctx, DISTRICT_USER[0])
    key = next(d.key for d in _departments() if d.code == department_code)
    return _user_actor(ctx, f"{key}.clerk")


def _departments():  # type: ignore[no-untyped-def]
    from xietong.demo.city import DEPARTMENTS

    return DEPARTMENTS


def _district_department(ctx: Context, admin: Actor) -> None:
    code, name, short, region = DISTRICT_DEPARTMENT
    if any(d.code == code for d in org.list_departments(ctx, admin)):
        return
    dept = org.create_department(ctx, admin, code, name, region, short_name=short)
    user = org.add_user(ctx, admin, DISTRICT_USER[0], DISTRICT_USER[1], "demo")
    for role in (Role.WINDOW_CLERK, Role.HEAD):
        org.grant_membership(ctx, admin, user.id, dept.id, role)


def _routes(ctx: Context, admin: Actor) -> None:
    for category, dept in CITY_ROUTES.items():
        dispatch.set_route(ctx, admin, category=category, department_code=dept)
    dispatch.set_route(
        ctx,
        admin,
        category="城乡建设",
        department_code=DISTRICT_DEPARTMENT[0],
        district_code=DISTRICT_DEPARTMENT[3],
    )


def _train(ctx: Context) -> None:
    try:
        from xietong.apps.hotline.classifier import ensure_demo_model
    except ImportError:  # the classifier is not installed: every ticket goes to a dispatcher
        log.warning("hotline classifier missing: demo tickets go to manual dispatch")
        return
    ensure_demo_model(ctx.settings)
    _model.reset()


def _shared_dir() -> Path | None:
    try:
        from xietong.apps.hotline.classifier.demo import shared_messages_dir
    except ImportError:
        return None
    return shared_messages_dir()


def _knowledge(ctx: Context, dispatcher: Actor, admin: Actor) -> None:
    for title, question, answer, category in FAQ:
        knowledge.add_entry(ctx, dispatcher, title, question, answer, category=category)
    shared = _shared_dir()
    if shared is not None and (shared / "replies.csv").is_file():
        knowledge.import_replies_csv(ctx, admin, shared / "replies.csv")


def _at(today: datetime, days_ago: float, hour: int = 10) -> clock.FrozenClock:
    moment = today.replace(hour=hour, minute=0, second=0, microsecond=0)
    return clock.FrozenClock(min(moment - timedelta(days=days_ago), today))


def _submit(ctx: Context, agent: Actor, item: DemoTicket, phone: str) -> intake.IntakeResult:
    return intake.submit_ticket(
        ctx,
        agent,
        intake.TicketInput(
            text=item.text,
            title=item.title,
            contact_phone=phone,
            contact_name="市民",
            channel="phone",
            type=item.type,
            district_code=item.district,
        ),
    )


def _play(ctx: Context, item: DemoTicket, number: str, dispatcher: Actor) -> None:
    """Move one ticket to the state the demo wants it in."""
    with ctx.db.read() as session:
        status = session.scalar(select(Ticket.status).where(Ticket.number == number))
    if item.ending == "pending":
        return
    if status == "pending_dispatch":
        dispatch.dispatch_ticket(ctx, dispatcher, number, category=item.category)
    with ctx.db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        dept_code = department_code(session, ticket.department_id)
    clerk = _clerk_for(ctx, dept_code)
    if item.ending in ("dispatched", "overdue"):
        return
    if item.ending == "sent_back":
        handling.send_back(
            ctx,
            clerk,
            number,
            "不属于本部门职责，药品质量问题请转市场监管部门",
            suggested_category=None,
        )
        return
    handling.accept(ctx, clerk, number)
    if item.ending == "accepted":
        return
    if item.ending == "extension":
        handling.request_extension(ctx, clerk, number, 14, "需协调施工单位和排水公司现场勘查")
        return
    handling.reply(
        ctx, clerk, number, "您好，您反映的问题已转相关科室核查处理，现场已整改，感谢监督。"
    )
    if item.ending == "replied":
        return
    first = "satisfied" if item.ending == "closed" else "unsatisfied"
    handling.rate(
        ctx,
        dispatcher,
        number,
        first,
        note="回访：市民表示" + ("满意" if first == "satisfied" else "问题未解决"),
    )
    if item.ending == "escalated":
        handling.reply(ctx, clerk, number, "已再次督促物业公司维修并安排特种设备检测。")
        handling.rate(ctx, dispatcher, number, "unsatisfied", note="回访：电梯仍故障")


def _answer(ctx: Context, number: str, dispatcher: Actor) -> None:
    """History is answered: accepted, replied, and rated 基本满意 at the follow-up call
    (基本满意, not 满意, so these stock replies stay out of the knowledge base)."""
    with ctx.db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        clerk = _clerk_for(ctx, department_code(session, ticket.department_id))
    handling.accept(ctx, clerk, number)
    handling.reply(ctx, clerk, number, "您反映的问题已转相关单位核实处理，处理结果已电话告知。")
    handling.rate(ctx, dispatcher, number, "basically_satisfied", note="回访：基本满意")


_PLACE = re.compile(r"A(\d)[区县市]")
CLUSTER_SIMILARITY = 0.45


def _hot_messages(limit: int) -> list[tuple[str, str, str | None, int]]:
    """(title, text, district, days ago) from hot-issues.csv: the messages that repeat
    each other most (title TF-IDF neighbours), spread over six weeks in their original
    order, the anonymised districts mapped onto 长沙's."""
    shared = _shared_dir()
    path = shared / "hot-issues.csv" if shared else None
    if path is None or not path.is_file():
        return [(text, text, district, 3 * n) for n, (text, district) in enumerate(HOTSPOT_TEXTS)]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("text")]
    titles = [f"{r.get('title') or ''} {r['text'][:60]}" for r in rows]
    matrix = TfidfVectorizer(analyzer=text.tokens, sublinear_tf=True).fit_transform(titles)
    similar = (matrix @ matrix.T).tocsr()
    similar.data[similar.data < CLUSTER_SIMILARITY] = 0
    similar.eliminate_zeros()
    chosen: list[int] = []
    taken: set[int] = set()
    for seed in np.argsort(-np.diff(similar.indptr)):
        if len(chosen) >= limit:
            break
        neighbours = [int(i) for i in similar[seed].indices if int(i) not in taken][:15]
        if len(neighbours) < 2:
            continue
        taken.update(neighbours)
        chosen.extend(neighbours)
    chosen.sort(key=lambda i: rows[i].get("time") or "")
    out = []
    for rank, index in enumerate(chosen[:limit]):
        row = rows[index]
        match = _PLACE.search(f"{row.get('title', '')}{row['text']}")
        district = DISTRICTS[(int(match.group(1)) - 1) % len(DISTRICTS)] if match else None
        days_ago = 41 - rank * 42 // max(len(chosen[:limit]), 1)
        out.append((row.get("title") or "", row["text"][:4000], district, days_ago))
    return out


def load_demo_hotline(ctx: Context) -> None:
    admin = operator_actor("demo")
    with ctx.db.read() as session:
        if session.scalar(select(func.count()).select_from(Ticket)):
            return
        has_routes = session.scalar(select(func.count()).select_from(Route))
    _district_department(ctx, admin)
    if not has_routes:
        _routes(ctx, admin)
    _train(ctx)
    dispatcher = _user_actor(ctx, "dispatcher")
    _knowledge(ctx, dispatcher, admin)
    today = clock.local_now()  # read once: the loop below installs clocks in the past
    previous = clock.use_clock(clock.SystemClock())
    try:
        # history first: the hotspot material, spread over the last six weeks
        history = _hot_messages(120)
        for index, (title, body, district, days_ago) in enumerate(history):
            clock.use_clock(_at(today, days_ago, hour=9 + index % 8))
            result = intake.submit_ticket(
                ctx,
                dispatcher,
                intake.TicketInput(
                    text=body,
                    title=title[:200],
                    contact_phone=f"139{index:08d}",
                    channel="web",
                    district_code=district,
                ),
            )
            if days_ago > 7 and result.status == "dispatched":
                _answer(ctx, result.number, dispatcher)
        for index, item in enumerate(TICKETS):
            clock.use_clock(_at(today, item.days_ago))
            result = _submit(ctx, dispatcher, item, f"1380000{index:04d}")
            _play(ctx, item, result.number, dispatcher)
    finally:
        clock.use_clock(previous)
    check_sla(ctx)
