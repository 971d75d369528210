"""Demo content: the processes, the matters of 出生一件事, 开办餐饮店一件事 and
企业开办一件事, the bundles published, accounts for citizens and an enterprise
(password ``demo``), and the connected system of the bank that opens the enterprise's
account (``bank.py`` simulates it).

Everything goes through the same service functions an administrator's requests do, and
every step checks first, so a second ``xietong demo`` changes nothing.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from xietong.apps.services import bundles, catalogue
from xietong.apps.services.bundles import BundleInput, MemberInput
from xietong.apps.services.catalogue import MatterInput
from xietong.apps.services.vocab import BundleStatus
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, NotFound
from xietong.kernel.org import service as org
from xietong.kernel.workflow import definitions

REVIEW = "svc_review"
ACCEPT_APPROVE = "svc_accept_approve"
BANK = "svc_bank_account"
BANK_EXCHANGE = "svc_bank_exchange"
# where the bank's system listens (``xietong services bank-simulator`` by default)
BANK_URL = os.environ.get("XIETONG_DEMO_BANK_URL", "http://127.0.0.1:8765/accounts")
BANK_SYSTEM = "scjg-bank-gateway"
# the bank has this many working days to answer before a clerk takes over
BANK_ANSWER_DAYS = 2
PROCESSES = {
    REVIEW: """
key: svc_review
name: 事项审核办理（一审）
steps:
  - id: handle
    name: 审核办理
    task: {roles: [window_clerk]}
""",
    ACCEPT_APPROVE: """
key: svc_accept_approve
name: 事项受理审批（受理—审批）
steps:
  - id: accept
    name: 受理审查
    task: {roles: [window_clerk]}
  - id: approve
    name: 审批决定
    task: {roles: [approver]}
""",
    # The call activity carries the boundary timer: the engine puts boundary events on
    # activities only, and interrupting the call also terminates the exchange, so a
    # late answer finds nothing waiting and the clerk's work stands.
    BANK_EXCHANGE: """
key: svc_bank_exchange
name: 银行开户报文交换（签名 Webhook，异步回执）
steps:
  - id: notify_bank
    name: 推送开户申请至开户银行
    service: {url: "%(url)s", retries: 5, outputs: [bank_ticket]}
  - id: await_bank
    name: 等待银行开户回执
    wait: {message: %(message)s, correlation: "${application_number + '/' + matter_code}"}
""",
    BANK: """
key: svc_bank_account
name: 企业银行开户（对接开户银行系统）
steps:
  - id: bank
    name: 开户银行办理
    call: svc_bank_exchange
    on_timer:
      after: P%(days)dD
      working_days: true
      steps:
        - id: bank_overdue
          name: 银行逾期未回执，人工核实开户
          task: {roles: [window_clerk]}
""",
}

S = {"type": "string"}


def _f(title: str, **extra: Any) -> dict[str, Any]:
    return {"type": extra.pop("type", "string"), "title": title, **extra}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


BABY = {
    "baby_name": _f("新生儿姓名", minLength=1, maxLength=50),
    "baby_gender": _f("新生儿性别", enum=["男", "女"]),
    "birth_date": _f("出生日期", format="date"),
}
MOBILE = {"guardian_mobile": _f("监护人手机号", format="cn-mobile")}
FROM_UPSTREAM = {"x-applicant": False}

MATTERS: list[MatterInput] = [
    MatterInput(
        code="430100-WJW-CSYXZM",
        name="出生医学证明首次签发",
        department_code="430100-wjw",
        matter_type="公共服务",
        legal_basis="《中华人民共和国母婴保健法》第二十三条；《出生医学证明管理办法》",
        promised_days=1,
        statutory_days=5,
        process_key=REVIEW,
        form_schema=_schema(
            {
                **BABY,
                "birth_place": _f("出生地点（助产机构）", minLength=2, maxLength=200),
                "mother_name": _f("母亲姓名", minLength=1, maxLength=50),
                "mother_id_number": _f("母亲身份证号", format="cn-id-card"),
                "father_name": _f("父亲姓名", minLength=1, maxLength=50),
                "father_id_number": _f("父亲身份证号", format="cn-id-card"),
            },
            [
                "baby_name",
                "baby_gender",
                "birth_date",
                "birth_place",
                "mother_name",
                "mother_id_number",
                "father_name",
                "father_id_number",
            ],
        ),
        materials=[
            {"code": "parents_id", "name": "父母双方居民身份证", "required": True},
            {"code": "delivery_record", "name": "住院分娩记录", "required": True},
        ],
        outputs=[{"name": "birth_cert_no", "title": "出生医学证明编号", "type": "string"}],
    ),
    MatterInput(
        code="430100-GA-CSDJ",
        name="出生登记（户口登记）",
        department_code="430100-ga",
        matter_type="行政确认",
        legal_basis="《中华人民共和国户口登记条例》第七条",
        promised_days=3,
        statutory_days=30,
        process_key=REVIEW,
        form_schema=_schema(
            {
                **BABY,
                "father_id_number": _f("父亲身份证号", format="cn-id-card"),
                "mother_id_number": _f("母亲身份证号", format="cn-id-card"),
                "household_address": _f("申报户籍地址", minLength=5, maxLength=200),
                "birth_cert_no": _f("出生医学证明编号", **FROM_UPSTREAM),
            },
            [
                "baby_name",
                "baby_gender",
                "birth_date",
                "father_id_number",
                "mother_id_number",
                "household_address",
                "birth_cert_no",
            ],
        ),
        materials=[
            {"code": "parents_id", "name": "父母双方居民身份证", "required": True},
            {"code": "hukou_book", "name": "居民户口簿", "required": True},
            {"code": "marriage_cert", "name": "结婚证", "required": False},
        ],
        outputs=[{"name": "id_number", "title": "公民身份号码", "type": "string"}],
    ),
    MatterInput(
        code="430100-YB-CXJMCB",
        name="城乡居民基本医疗保险参保登记",
        department_code="430100-yb",
        matter_type="公共服务",
        legal_basis="《中华人民共和国社会保险法》第二十五条",
        promised_days=2,
        statutory_days=15,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "baby_name": BABY["baby_name"],
                **MOBILE,
                "id_number": _f("公民身份号码", **FROM_UPSTREAM),
            },
            ["baby_name", "guardian_mobile", "id_number"],
        ),
        materials=[{"code": "hukou_book", "name": "居民户口簿", "required": True}],
        outputs=[{"name": "insurance_no", "title": "医保个人编号", "type": "string"}],
    ),
    MatterInput(
        code="430100-RS-SBKSL",
        name="社会保障卡申领",
        department_code="430100-rs",
        matter_type="公共服务",
        legal_basis="《中华人民共和国社会保险法》第五十八条；《社会保障卡管理办法》",
        promised_days=5,
        statutory_days=20,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "baby_name": BABY["baby_name"],
                **MOBILE,
                "mailing_address": _f("社保卡邮寄地址", minLength=5, maxLength=200),
                "id_number": _f("公民身份号码", **FROM_UPSTREAM),
            },
            ["baby_name", "guardian_mobile", "mailing_address", "id_number"],
        ),
        materials=[{"code": "baby_photo", "name": "新生儿证件照片", "required": True}],
        outputs=[{"name": "card_no", "title": "社会保障卡卡号", "type": "string"}],
    ),
    MatterInput(
        code="430100-SCJG-YYZZ",
        name="企业设立登记（营业执照）",
        department_code="430100-scjg",
        matter_type="行政许可",
        legal_basis="《中华人民共和国市场主体登记管理条例》第三条",
        promised_days=1,
        statutory_days=3,
        process_key=ACCEPT_APPROVE,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "legal_rep_name": _f("法定代表人", minLength=1, maxLength=50),
                "legal_rep_id_number": _f("法定代表人身份证号", format="cn-id-card"),
                "address": _f("住所（经营场所）", minLength=5, maxLength=200),
                "registered_capital": _f("注册资本（万元）", type="number", minimum=0),
                "business_scope": _f("经营范围", minLength=2, maxLength=500),
            },
            [
                "company_name",
                "legal_rep_name",
                "legal_rep_id_number",
                "address",
                "registered_capital",
                "business_scope",
            ],
        ),
        materials=[
            {"code": "legal_rep_id", "name": "法定代表人身份证", "required": True},
            {"code": "articles", "name": "公司章程", "required": True},
            {"code": "premises_proof", "name": "经营场所使用证明", "required": True},
        ],
        outputs=[{"name": "uscc", "title": "统一社会信用代码", "type": "string"}],
    ),
    MatterInput(
        code="430100-SCJG-SPJY",
        name="食品经营许可",
        department_code="430100-scjg",
        matter_type="行政许可",
        legal_basis="《中华人民共和国食品安全法》第三十五条；《食品经营许可和备案管理办法》",
        promised_days=5,
        statutory_days=20,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "address": _f("住所（经营场所）", minLength=5, maxLength=200),
                "food_categories": _f("经营项目", minLength=2, maxLength=200),
                "uscc": _f("统一社会信用代码", **FROM_UPSTREAM),
            },
            ["company_name", "address", "food_categories", "uscc"],
        ),
        materials=[
            {"code": "premises_proof", "name": "经营场所使用证明", "required": True},
            {"code": "kitchen_layout", "name": "后厨布局流程图", "required": True},
        ],
        outputs=[{"name": "food_license_no", "title": "食品经营许可证编号", "type": "string"}],
    ),
    MatterInput(
        code="430100-GA-GZKZ",
        name="公章刻制备案",
        department_code="430100-ga",
        matter_type="其他行政权力",
        legal_basis="《印铸刻字业暂行管理规则》",
        promised_days=1,
        statutory_days=3,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "legal_rep_name": _f("法定代表人", minLength=1, maxLength=50),
                "uscc": _f("统一社会信用代码", **FROM_UPSTREAM),
            },
            ["company_name", "legal_rep_name", "uscc"],
        ),
        materials=[{"code": "legal_rep_id", "name": "法定代表人身份证", "required": True}],
        outputs=[{"name": "seal_record_no", "title": "印章备案编号", "type": "string"}],
    ),
    MatterInput(
        code="430100-SW-FPSL",
        name="新办纳税人涉税事项与发票申领",
        department_code="430100-sw",
        matter_type="公共服务",
        legal_basis="《中华人民共和国税收征收管理法》第十五条；《中华人民共和国发票管理办法》",
        promised_days=1,
        statutory_days=10,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "tax_contact_mobile": _f("办税人手机号", format="cn-mobile"),
                "uscc": _f("统一社会信用代码", **FROM_UPSTREAM),
            },
            ["company_name", "tax_contact_mobile", "uscc"],
        ),
        materials=[{"code": "legal_rep_id", "name": "法定代表人身份证", "required": True}],
        outputs=[{"name": "invoice_quota", "title": "发票核定", "type": "string"}],
    ),
    MatterInput(
        code="430100-RS-DWSBDJ",
        name="单位社会保险登记",
        department_code="430100-rs",
        matter_type="行政确认",
        legal_basis="《中华人民共和国社会保险法》第五十七条",
        promised_days=1,
        statutory_days=15,
        process_key=REVIEW,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "employee_count": _f("参保职工人数", type="integer", minimum=0),
                "uscc": _f("统一社会信用代码", **FROM_UPSTREAM),
            },
            ["company_name", "employee_count", "uscc"],
        ),
        materials=[],
        outputs=[{"name": "unit_no", "title": "单位社保编号", "type": "string"}],
    ),
    MatterInput(
        code="430100-SCJG-YHKH",
        name="企业银行基本存款账户开立",
        department_code="430100-scjg",
        matter_type="公共服务",
        legal_basis="《人民币银行结算账户管理办法》；《企业银行结算账户管理办法》",
        promised_days=BANK_ANSWER_DAYS + 1,
        statutory_days=5,
        process_key=BANK,
        form_schema=_schema(
            {
                "company_name": _f("企业名称", minLength=4, maxLength=100),
                "legal_rep_name": _f("法定代表人", minLength=1, maxLength=50),
                "legal_rep_id_number": _f("法定代表人身份证号", format="cn-id-card"),
                "opening_bank": _f(
                    "开户银行",
                    enum=["长沙银行", "中国工商银行长沙分行", "中国建设银行长沙分行"],
                ),
                "uscc": _f("统一社会信用代码", **FROM_UPSTREAM),
            },
            ["company_name", "legal_rep_name", "legal_rep_id_number", "opening_bank", "uscc"],
        ),
        materials=[{"code": "legal_rep_id", "name": "法定代表人身份证", "required": True}],
        outputs=[{"name": "bank_account_no", "title": "基本存款账户账号", "type": "string"}],
        external_system_code=BANK_SYSTEM,
    ),
]


def _uscc_from(source: str) -> list[dict[str, str]]:
    return [{"from": source, "output": "uscc", "to": "uscc"}]


BUNDLES: list[BundleInput] = [
    BundleInput(
        code="birth",
        name="出生一件事",
        description="新生儿出生后，一次申请办理出生医学证明、户口登记、医保参保和社保卡申领，"
        "材料只交一次，结果一次送达。",
        life_event="出生",
        audience="person",
        lead_department_code="430100-wjw",
        region_code="430100",
        matters=[
            MemberInput("430100-WJW-CSYXZM"),
            MemberInput(
                "430100-GA-CSDJ",
                ["430100-WJW-CSYXZM"],
                [{"from": "430100-WJW-CSYXZM", "output": "birth_cert_no", "to": "birth_cert_no"}],
            ),
            MemberInput(
                "430100-YB-CXJMCB",
                ["430100-GA-CSDJ"],
                [{"from": "430100-GA-CSDJ", "output": "id_number", "to": "id_number"}],
            ),
            MemberInput(
                "430100-RS-SBKSL",
                ["430100-GA-CSDJ"],
                [{"from": "430100-GA-CSDJ", "output": "id_number", "to": "id_number"}],
            ),
        ],
    ),
    BundleInput(
        code="restaurant",
        name="开办餐饮店一件事",
        description="开一家餐馆：营业执照、食品经营许可、公章刻制、税务与发票、单位社保登记一次申请。",
        life_event="开办企业",
        audience="organization",
        lead_department_code="430100-scjg",
        region_code="430100",
        matters=[
            MemberInput("430100-SCJG-YYZZ"),
            MemberInput("430100-SCJG-SPJY", ["430100-SCJG-YYZZ"], _uscc_from("430100-SCJG-YYZZ")),
            MemberInput("430100-GA-GZKZ", ["430100-SCJG-YYZZ"], _uscc_from("430100-SCJG-YYZZ")),
            MemberInput("430100-SW-FPSL", ["430100-SCJG-YYZZ"], _uscc_from("430100-SCJG-YYZZ")),
            MemberInput("430100-RS-DWSBDJ", ["430100-SCJG-YYZZ"], _uscc_from("430100-SCJG-YYZZ")),
        ],
    ),
    BundleInput(
        code="enterprise",
        name="企业开办一件事",
        description="新开办企业一次申请：营业执照、公章刻制、税务登记与发票申领、单位社保登记，"
        "银行开户由开户银行系统在线办理，统一社会信用代码自动流转，结果一次送达。",
        life_event="开办企业",
        audience="organization",
        lead_department_code="430100-scjg",
        region_code="430100",
        matters=[
            MemberInput("430100-SCJG-YYZZ"),
            *(
                MemberInput(code, ["430100-SCJG-YYZZ"], _uscc_from("430100-SCJG-YYZZ"))
                for code in (
                    "430100-GA-GZKZ",
                    "430100-SW-FPSL",
                    "430100-RS-DWSBDJ",
                    "430100-SCJG-YHKH",
                )
            ),
        ],
    ),
]

# (username, display name): people who apply, not staff — they hold no role
APPLICANTS = [
    ("citizen.zhang", "张晓明"),
    ("citizen.li", "李红"),
    ("ent.xiangwei", "周湘（长沙湘味餐饮管理有限公司）"),
]
DEMO_PASSWORD = "demo"


def process_source(key: str, bank_url: str = BANK_URL) -> str:
    from xietong.apps.services.external import MESSAGE

    values = {"url": bank_url, "message": MESSAGE, "days": BANK_ANSWER_DAYS}
    return (PROCESSES[key] % values if key in (BANK, BANK_EXCHANGE) else PROCESSES[key]).strip()


def deploy_processes(ctx: Context, actor: Actor, bank_url: str = BANK_URL) -> None:
    deployed = {d.key for d in definitions.list_definitions(ctx, actor)}
    for key in PROCESSES:
        if key not in deployed:
            definitions.deploy(ctx, actor, process_source(key, bank_url), "yaml")


def load_catalogue(ctx: Context, actor: Actor) -> None:
    """Processes, matters and published bundles (matters are upserted, bundles once)."""
    deploy_processes(ctx, actor)
    from xietong.kernel.uow import UnitOfWork

    for matter in MATTERS:
        with UnitOfWork(ctx, actor) as uow:
            _view, outcome = catalogue.save_matter(uow, catalogue.check_matter(matter)[0])
            if outcome != "unchanged":
                uow.commit()
    for bundle in BUNDLES:
        with suppress(NotFound):
            if bundles.get_bundle(ctx, actor, bundle.code).status == BundleStatus.PUBLISHED:
                continue
        bundles.save_bundle(ctx, actor, bundle)
        bundles.publish_bundle(ctx, actor, bundle.code)


def load_demo(ctx: Context) -> None:
    actor = operator_actor("demo")
    load_catalogue(ctx, actor)
    for username, display in APPLICANTS:
        with suppress(Conflict):
            org.add_user(ctx, actor, username, display, DEMO_PASSWORD)
    _list_accounts(ctx)
    register_bank(ctx, actor)


def bank_file(ctx: Context) -> Path:
    return ctx.settings.data_dir / "services-demo-bank.json"


def register_bank(ctx: Context, actor: Actor) -> str:
    """The bank's gateway as a connected system of the 市场监管局 (which runs 企业开办),
    acting as a 窗口受理 there; its API key goes to a file only the data dir's owner reads,
    where ``xietong services bank-simulator`` finds it. Returns the key."""
    from sqlalchemy import select

    from xietong.kernel.org.models import ConnectedSystem, Department
    from xietong.kernel.org.systems import register_connected_system, rotate_system_key

    path = bank_file(ctx)
    with ctx.db.read() as session:
        dept = session.scalar(select(Department.id).where(Department.code == "430100-scjg"))
        system = session.scalar(
            select(ConnectedSystem.id).where(ConnectedSystem.code == BANK_SYSTEM)
        )
    if dept is None:
        raise NotFound.of("部门", "Department", "430100-scjg")
    if system is not None and path.is_file():
        return str(json.loads(path.read_text(encoding="utf-8"))["api_key"])
    if system is None:
        issued = register_connected_system(
            ctx, actor, BANK_SYSTEM, "开户银行对接网关（演示）", dept, [Role.EXTERNAL]
        )
    else:  # the key file was lost: a new key replaces the unknown one
        issued = rotate_system_key(ctx, actor, system)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(
        json.dumps({"api_key": issued.api_key, "url": BANK_URL}, ensure_ascii=False),
        encoding="utf-8",
    )
    return issued.api_key


def _list_accounts(ctx: Context) -> None:
    """Add the applicants to the login page's list of demo accounts."""
    path = ctx.settings.data_dir / "demo-accounts.json"
    rows = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    group = "群众与企业（办事人）"
    rows = [r for r in rows if r.get("department") != group]
    rows.append(
        {
            "department": group,
            "accounts": [{"username": u, "roles": f"（{d}）"} for u, d in APPLICANTS],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
