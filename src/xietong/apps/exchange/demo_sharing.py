"""The demo city's sharing: provider systems, connectors, grants and gateway traffic.

- Provider data (all invented, realistic): the 公安局's 户籍 table and the 卫健委's
  出生医学证明 table, each a SQLite database in ``<data dir>/exchange-demo/``; the
  医保局's 参保 list as a CSV file in the exchange folder.
- A provider HTTP service in front of the two databases (``demo_provider``: the REST
  connector's contract, one path per data set), as a department's own system would be.
  It listens on a port chosen when the demo is loaded and recorded in
  ``exchange-demo/provider.json``; loading runs it for the demo's own queries, and the
  platform's server starts it again on that port whenever it serves this data
  directory (``serve_demo_provider``). So a query goes gateway → REST connector →
  provider service → masking → audit leaf → receipt, end to end over HTTP.
- Connectors over them: REST for 户籍 and 出生医学证明 (with a secret header, encrypted
  like any credential), a file connector for the 参保 CSV.
- Connected systems of the consuming departments; their API keys are written to
  ``<data dir>/exchange-demo/systems.json`` (a demo convenience, like the demo
  accounts' shared password — a real key is shown once and never stored).
- Requests: 医保局 gets 户籍人口 at once (无条件); 人社局's request for 出生医学证明 is
  approved by the 卫健委 through the workflow, 教育局's refused with an opinion; 民政局
  is refused 纳税人涉税明细 (不予共享); 公安局's request for 参保信息 waits in the
  医保局's inbox.
- Gateway queries by the consumers' systems, so the statistics have something to show.

Runs once: a second ``xietong demo`` finds the 户籍 connector and stops.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from xietong.apps.exchange import connector_service, gateway, grants
from xietong.apps.exchange.connectors.files import files_root
from xietong.apps.exchange.connectors.settings import ConnectorInput
from xietong.apps.exchange.demo_provider import ProviderServer, Rows
from xietong.apps.exchange.fake import GIVEN, SURNAMES, people
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.sharing_models import Connector
from xietong.kernel.access import Actor, operator_actor
from xietong.kernel.bus import InProcessBus, relay_once
from xietong.kernel.context import Context
from xietong.kernel.org.models import Department, User
from xietong.kernel.org.scopes import actor_for_user
from xietong.kernel.org.systems import authenticate_api_key, register_connected_system

HUKOU = "101001/000001"
BIRTH = "101002/000001"
MEDICAL = "203002/000001"
TAX = "301006/000001"
PROVIDER_FILE = "provider.json"
# the provider service's data sets: path -> (database file, table); names are constants
SERVED = {"/ga/hukou": ("hukou.db", "hukou"), "/wjw/cszm": ("births.db", "cszm")}
# what the provider service asks of the platform's calls (a demo token, stored encrypted)
PROVIDER_TOKEN = "Bearer demo-provider-token"
log = logging.getLogger(__name__)
HOSPITALS = ["湖南省妇幼保健院", "长沙市妇幼保健院", "中南大学湘雅医院", "湖南省人民医院"]


def _hukou(path: Path, rows: list[dict[str, Any]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE hukou (id INTEGER PRIMARY KEY, xm TEXT, gmsfhm TEXT, xb TEXT,"
            " mz TEXT, csrq TEXT, hjdz TEXT, xzqh TEXT, djrq TEXT)"
        )
        db.executemany(
            "INSERT INTO hukou VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r["id"],
                    r["姓名"],
                    r["公民身份号码"],
                    r["性别"],
                    r["民族"],
                    r["出生日期"],
                    r["户籍地址"],
                    r["户籍地行政区划代码"],
                    r["登记日期"],
                )
                for r in rows
            ],
        )


def _births(path: Path, parents: list[dict[str, Any]], count: int) -> None:
    rng = random.Random(2026)
    rows = []
    for number in range(1, count + 1):
        mother, father = rng.sample(parents, 2)
        born = date(2026, 1, 1) + timedelta(days=rng.randrange(300))
        rows.append(
            (
                f"Q430{born:%y}{number:06d}",
                mother["姓名"][0] + "".join(rng.choice(GIVEN) for _ in range(2)),
                rng.choice(["男", "女"]),
                f"{born.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
                rng.choice(HOSPITALS),
                mother["姓名"],
                mother["公民身份号码"],
                rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
                if rng.random() < 0.05
                else father["姓名"],
                father["公民身份号码"],
                rng.choice(HOSPITALS),
                (born + timedelta(days=rng.randrange(1, 5))).isoformat(),
            )
        )
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE cszm (zmbh TEXT PRIMARY KEY, xsexm TEXT, xsexb TEXT, cssj TEXT,"
            " csdd TEXT, mqxm TEXT, mqsfzh TEXT, fqxm TEXT, fqsfzh TEXT, qfjg TEXT, qfrq TEXT)"
        )
        db.executemany("INSERT INTO cszm VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _medical(path: Path, rows: list[dict[str, Any]]) -> None:
    rng = random.Random(203002)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [
        "个人编号",
        "姓名",
        "公民身份号码",
        "险种类型",
        "参保状态",
        "参保日期",
        "参保地行政区划代码",
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for r in rows:
            writer.writerow(
                [
                    f"YB{r['id']:08d}",
                    r["姓名"],
                    r["公民身份号码"],
                    rng.choice(["职工基本医疗保险", "城乡居民基本医疗保险"]),
                    rng.choice(["参保缴费", "参保缴费", "参保缴费", "暂停缴费"]),
                    r["登记日期"],
                    r["户籍地行政区划代码"],
                ]
            )


def provider_datasets(folder: Path) -> dict[str, Rows]:
    """The provider service's rows, read once from the departments' demo databases."""
    found: dict[str, Rows] = {}
    for path, (name, table) in SERVED.items():
        with closing(sqlite3.connect(folder / name)) as db:
            db.row_factory = sqlite3.Row
            found[path] = [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY 1")]
    return found


def demo_provider(data_dir: Path, port: int | None = None) -> ProviderServer | None:
    """The demo's provider service (not started) on the recorded port, or on ``port``
    (0: any free one); ``None`` when this data directory holds no demo provider data."""
    folder = data_dir / "exchange-demo"
    record = folder / PROVIDER_FILE
    if port is None:
        if not record.exists():
            return None
        port = int(json.loads(record.read_text(encoding="utf-8"))["port"])
    elif not all((folder / name).exists() for name, _ in SERVED.values()):
        return None
    return ProviderServer(
        [], port=port, datasets=provider_datasets(folder), token=PROVIDER_TOKEN.split()[1]
    )


@asynccontextmanager
async def serve_demo_provider(app: Any) -> AsyncIterator[None]:
    """Lifespan of the platform's server: run the demo provider service beside it."""
    ctx = getattr(app.state, "ctx", None)
    server = None
    if ctx is not None:
        try:
            server = demo_provider(ctx.settings.data_dir)
        except (OSError, ValueError, KeyError, sqlite3.Error) as error:
            log.warning("demo provider service not started: %s", error)
    if server is not None:
        server.start()
        log.info("demo provider service: %s", server.url)
    try:
        yield
    finally:
        if server is not None:
            server.stop()


def _person(ctx: Context, username: str) -> Actor:
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise RuntimeError(f"demo user {username} missing")
        return actor_for_user(session, user)


def _dept(ctx: Context, code: str) -> int:
    with ctx.db.read() as session:
        found = session.scalar(select(Department.id).where(Department.code == code))
        if found is None:
            raise RuntimeError(f"demo department {code} missing")
        return found


def _drain(ctx: Context) -> None:
    bus = InProcessBus(ctx)
    while relay_once(ctx, bus):
        pass


def _request(
    ctx: Context, username: str, code: str, items: tuple[str, ...], purpose: str, basis: str
) -> grants.RequestView:
    until = date.today() + timedelta(days=365)
    data = grants.RequestInput(code, items, purpose, basis, until)
    return grants.submit_request(ctx, _person(ctx, username), data)


def load_demo_sharing(ctx: Context) -> None:
    op = operator_actor("demo")
    with ctx.db.read() as session:
        hukou_id = session.scalar(select(Resource.id).where(Resource.code == HUKOU))
        if hukou_id is None:
            return  # no demo catalogue
        if session.scalar(select(Connector.id).where(Connector.resource_id == hukou_id)):
            return  # loaded before
    folder = ctx.settings.data_dir / "exchange-demo"
    folder.mkdir(parents=True, exist_ok=True)
    residents = people(600)
    for name in ("hukou.db", "births.db"):
        (folder / name).unlink(missing_ok=True)
    _hukou(folder / "hukou.db", residents)
    _births(folder / "births.db", residents, 240)
    _medical(files_root(ctx.settings.data_dir) / "yb_cbxx.csv", residents[:400])

    provider = demo_provider(ctx.settings.data_dir, port=0)
    assert provider is not None
    with provider:
        port = int(provider.server.server_address[1])
        (folder / PROVIDER_FILE).write_text(json.dumps({"port": port}), encoding="utf-8")
        _load_with_provider(ctx, op, provider.url, residents)


def _load_with_provider(
    ctx: Context, op: Actor, provider_url: str, residents: list[dict[str, Any]]
) -> None:
    folder = ctx.settings.data_dir / "exchange-demo"
    secret = {"headers": {"Authorization": PROVIDER_TOKEN}}
    connector_service.configure_connector(
        ctx,
        op,
        HUKOU,
        ConnectorInput(
            "rest",
            {"url": provider_url + "ga/hukou", "timeout_s": 5, "retries": 1},
            secret,
            {
                "姓名": "xm",
                "公民身份号码": "gmsfhm",
                "性别": "xb",
                "民族": "mz",
                "出生日期": "csrq",
                "户籍地址": "hjdz",
                "户籍地行政区划代码": "xzqh",
                "登记日期": "djrq",
            },
        ),
    )
    connector_service.configure_connector(
        ctx,
        op,
        BIRTH,
        ConnectorInput(
            "rest",
            {"url": provider_url + "wjw/cszm", "timeout_s": 5, "retries": 1},
            secret,
            {
                "出生医学证明编号": "zmbh",
                "新生儿姓名": "xsexm",
                "新生儿性别": "xsexb",
                "出生时间": "cssj",
                "出生地点": "csdd",
                "母亲姓名": "mqxm",
                "母亲公民身份号码": "mqsfzh",
                "父亲姓名": "fqxm",
                "父亲公民身份号码": "fqsfzh",
                "签发机构": "qfjg",
                "签发日期": "qfrq",
            },
        ),
    )
    connector_service.configure_connector(
        ctx, op, MEDICAL, ConnectorInput("file", {"path": "yb_cbxx.csv"}, None, {})
    )
    for code in (HUKOU, BIRTH, MEDICAL):
        connector_service.test_connection(ctx, op, code)

    systems = {}
    for code, name, dept in (
        ("yb-ywxt", "医保业务经办系统", "430100-yb"),
        ("rs-shbk", "社会保障卡管理系统", "430100-rs"),
        ("ga-hjxt", "户籍管理系统", "430100-ga"),
    ):
        issued = register_connected_system(ctx, op, code, name, _dept(ctx, dept), [])
        systems[code] = issued.api_key
    (folder / "systems.json").write_text(
        json.dumps(systems, ensure_ascii=False, indent=2), encoding="utf-8"
    )

    basis = "《政务信息资源共享管理暂行办法》（国发〔2016〕51号）"
    _request(
        ctx,
        "yb.data",
        HUKOU,
        ("姓名", "公民身份号码", "出生日期", "户籍地址"),
        "医保参保登记时核验参保人身份",
        basis,
    )
    birth_items = ("出生医学证明编号", "新生儿姓名", "出生时间", "母亲姓名", "母亲公民身份号码")
    approved = _request(ctx, "rs.data", BIRTH, birth_items, "出生一件事：新生儿社保卡申领", basis)
    grants.decide_request(
        ctx,
        _person(ctx, "wjw.data"),
        approved.id,
        approve=True,
        opinion="同意。限出生一件事联办使用，不得另作他用。",
    )
    refused = _request(
        ctx,
        "jy.data",
        BIRTH,
        ("新生儿姓名", "出生时间"),
        "学位预测统计",
        "教育事业统计需要",
    )
    grants.decide_request(
        ctx,
        _person(ctx, "wjw.data"),
        refused.id,
        approve=False,
        opinion="用途超出共享条件（限出生一件事联办），请改用统计部门发布的汇总数据。",
    )
    _request(
        ctx,
        "mz.data",
        TAX,
        ("纳税人识别号", "应纳税额"),
        "低保家庭经济状况核对",
        "《社会救助暂行办法》第十一条",
    )
    _request(
        ctx,
        "ga.data",
        MEDICAL,
        ("个人编号", "姓名", "参保状态"),
        "户籍迁移时核对医保参保状态",
        "《湖南省户口登记管理办法》",
    )
    _drain(ctx)

    yb = authenticate_api_key(ctx, systems["yb-ywxt"])
    rs = authenticate_api_key(ctx, systems["rs-shbk"])
    assert yb is not None and rs is not None
    for resident in residents[:24]:
        gateway.query(
            ctx,
            yb,
            HUKOU,
            "yb/cbdj",
            gateway.GatewayQuery(None, {"公民身份号码": resident["公民身份号码"]}, 10, 0),
        )
    for page in range(8):
        gateway.query(ctx, rs, BIRTH, "rs/shbk-sl", gateway.GatewayQuery(None, {}, 20, page * 20))
