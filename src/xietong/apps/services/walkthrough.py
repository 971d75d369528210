"""``xietong demo walkthrough --base-url URL`` (also ``xietong services walkthrough``):
出生一件事 through the public REST API, as any integrator would drive it — log in,
upload materials, apply once, each department's clerk concludes their sub-case, the
results arrive together, the citizen verifies the notice's signature and rates. Each
step is printed; exit 0 when the citizen holds every result.

It needs a server with the demo loaded (``xietong serve --demo``). Every run applies
again with a new Idempotency-Key, so it can be repeated.

The group also holds ``xietong services bank-simulator``, the bank of 企业开办一件事
(``bank.py``).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from typing import Any

import httpx
import typer

from xietong.apps.services.demo import DEMO_PASSWORD

cli = typer.Typer(help="一件事一次办 / services", no_args_is_help=True)

CITIZEN = "citizen.zhang"
CLERKS = [
    ("wjw.clerk", {"birth_cert_no": "T{n}"}),
    ("ga.clerk", {"id_number": "430102202611200011"}),
    ("yb.clerk", {"insurance_no": "YB{n}"}),
    ("rs.clerk", {"card_no": "SB{n}"}),
]
FORM = {
    "baby_name": "张小宝",
    "baby_gender": "男",
    "birth_date": "2026-11-20",
    "birth_place": "湖南省妇幼保健院",
    "mother_name": "李红",
    "mother_id_number": "430103199207082468",
    "father_name": "张晓明",
    "father_id_number": "430102199003151234",
    "household_address": "长沙市芙蓉区五一大道 1 号",
    "guardian_mobile": "13800000001",
    "mailing_address": "长沙市芙蓉区五一大道 1 号",
}


class Failed(Exception):
    pass


def _ofd() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    return buffer.getvalue()


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        request = response.request
        raise Failed(
            f"{request.method} {request.url.path} → {response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def _login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    body = _check(
        client.post("/api/v1/auth/token", json={"username": username, "password": password}), 200
    )
    return {"Authorization": f"Bearer {body['access_token']}"}


def run(
    base_url: str,
    password: str = DEMO_PASSWORD,
    echo: Any = print,
    *,
    client: httpx.Client | None = None,
) -> str:
    """Drive one application to delivery; returns its number (raises ``Failed``).

    ``client`` replaces the HTTP client (a test passes FastAPI's ``TestClient``)."""
    if client is not None:
        return _run(client, password, echo)
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=30) as own:
        return _run(own, password, echo)


def _run(client: httpx.Client, password: str, echo: Any) -> str:
    citizen = _login(client, CITIZEN, password)
    echo(f"1. {CITIZEN} 登录 / logged in")
    bundle = _check(client.get("/api/v1/services/bundles/birth"), 200)
    fields = len(bundle["merged_form"]["properties"])
    echo(
        f"2. 一件事“{bundle['name']}”：{len(bundle['matters'])} 个事项，"
        f"{fields} 个字段，{len(bundle['merged_materials'])} 份材料"
    )
    token = uuid.uuid4().hex[:8]
    materials: dict[str, str] = {}
    for material in bundle["merged_materials"]:
        name, data = (
            (f"{material['code']}.ofd", _ofd())
            if material["code"] == "hukou_book"
            else (
                f"{material['code']}.pdf",
                b"%PDF-1.7\n% " + token.encode() + material["code"].encode(),
            )
        )
        up = _check(
            client.post("/api/v1/services/uploads", headers=citizen, files={"file": (name, data)}),
            201,
        )
        materials[material["code"]] = up["sha256"]
        echo(f"3. 上传材料 {material['name']} → sha256 {up['sha256'][:12]}… ({up['media_type']})")
    key = f"walkthrough-{token}"
    app = _check(
        client.post(
            "/api/v1/services/applications",
            headers={**citizen, "Idempotency-Key": key},
            json={"bundle": "birth", "form": FORM, "materials": materials},
        ),
        201,
    )
    number = app["number"]
    echo(f"4. 一次提交 / submitted once: 办件编号 {number}，承诺 {app['due_date']} 前办结")
    again = _check(
        client.post(
            "/api/v1/services/applications",
            headers={**citizen, "Idempotency-Key": key},
            json={"bundle": "birth", "form": FORM, "materials": materials},
        ),
        200,
    )
    echo(f"5. 重复提交同一 Idempotency-Key → 同一办件 {again['number']}")
    for index, (clerk, outputs) in enumerate(CLERKS, start=6):
        headers = _login(client, clerk, password)
        todo = _check(client.get("/api/v1/services/workbench/todo", headers=headers), 200)["items"]
        item = next((i for i in todo if i["application_number"] == number), None)
        if item is None:
            raise Failed(f"{clerk}: {number} is not in the todo list")
        sub = _check(
            client.get(f"/api/v1/services/sub-cases/{item['sub_case_id']}", headers=headers),
            200,
        )
        values = {k: v.format(n=number[-6:]) for k, v in outputs.items()}
        _check(
            client.post(
                f"/api/v1/services/sub-cases/{item['sub_case_id']}/approve",
                headers=headers,
                json={"outputs": values, "opinion": "材料齐全，同意"},
            ),
            200,
        )
        echo(
            f"{index}. {clerk}（{item['department_name']}）办结“{item['matter_name']}”："
            f"看到 {len(sub['form'])} 个字段，登记 {values}"
        )
    app = _check(client.get(f"/api/v1/services/applications/{number}", headers=citizen), 200)
    if app["status"] != "delivered":
        raise Failed(f"{number} is {app['status']}, not delivered")
    for result in app["notice"]["results"]:
        echo(f"10. 结果 {result['department']} · {result['matter']}：{result['outputs']}")
    notice = app["documents"][-1]
    verified = _check(
        client.post(
            "/api/v1/services/documents/verify",
            json={"content": notice["content"], "signature": notice["signature"]},
        ),
        200,
    )
    if not verified["valid"]:
        raise Failed("the notice's signature does not verify")
    echo(f"11. 办结通知书签名有效 / notice signature valid (sha256 {verified['sha256'][:16]}…)")
    departments = {str(s["department_id"]): {"level": 5} for s in app["sub_cases"]}
    _check(
        client.post(
            f"/api/v1/services/applications/{number}/rating",
            headers=citizen,
            json={"bundle": {"level": 5, "comment": "一次办成"}, "departments": departments},
        ),
        200,
    )
    echo("12. 好差评：非常满意 / rated")
    return number


@cli.command("walkthrough")
def walkthrough(
    base_url: str = typer.Option(
        "http://127.0.0.1:8000", "--base-url", help="服务地址 / server URL"
    ),
    password: str = typer.Option(DEMO_PASSWORD, "--password", help="演示账号密码 / demo password"),
) -> None:
    """出生一件事全流程（REST API）/ walk 出生一件事 through the REST API."""
    try:
        number = run(base_url, password, echo=typer.echo)
    except (Failed, httpx.HTTPError) as error:
        typer.echo(f"失败 / failed: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"完成：{number} 的全部结果已一次送达 / done: all results delivered together")


@cli.command("bank-simulator")
def bank_simulator(
    base_url: str = typer.Option(
        "http://127.0.0.1:8000", "--base-url", help="平台地址 / the platform's URL"
    ),
    listen: str = typer.Option(
        "", "--listen", help="监听地址 host:port（默认取演示流程中的银行地址）/ host:port"
    ),
    delay: float = typer.Option(3.0, "--delay", help="几秒后回执 / answer after seconds"),
    never_answer: bool = typer.Option(
        False, "--never-answer", help="只受理不回执（演示超时转人工）/ accept, never answer"
    ),
    api_key: str = typer.Option(
        "", "--api-key", help="银行接入系统的 API 密钥（默认取演示数据目录）/ the bank's API key"
    ),
    secret: str = typer.Option(
        "", "--secret", help="Webhook 密钥 whsec_…（默认由本机密钥推导）/ webhook secret"
    ),
) -> None:
    """模拟开户银行：接收签名 Webhook，稍后经 API 回执 / simulate the bank of 企业开办."""
    import json

    from xietong.apps.services import bank, demo
    from xietong.config import get_settings
    from xietong.kernel.context import open_context
    from xietong.kernel.workflow.services import webhook_secret

    def fail(zh: str, en: str, code: int = 2) -> None:
        typer.echo(f"错误：{zh}\nerror: {en}", err=True)
        raise typer.Exit(code)

    host, _, port = listen.rpartition(":")
    if listen and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        fail(f"监听地址应为 host:port：{listen}", f"--listen must be host:port: {listen}")
    url = httpx.URL(f"http://{listen}/accounts" if listen else demo.BANK_URL)
    if not api_key or not secret:
        try:
            ctx = open_context(get_settings())
        except Exception as error:  # no keys or no database: not initialised here
            fail(
                "无法打开本机数据目录（请先运行 xietong demo，或给出 --secret 与 --api-key）："
                f"{error}",
                f"cannot open the data dir (run xietong demo, or pass --secret and --api-key): "
                f"{error}",
            )
        try:
            secret = secret or webhook_secret(ctx, str(url))
            path = demo.bank_file(ctx)
        finally:
            ctx.close()
        if not api_key:
            if not path.is_file():
                fail(
                    f"没有 {path}，请先运行 xietong demo 或给出 --api-key",
                    f"{path} missing; run xietong demo or pass --api-key",
                )
            api_key = json.loads(path.read_text(encoding="utf-8"))["api_key"]
    simulator = bank.BankSimulator(secret, delay_s=delay, answers=not never_answer)
    try:
        bank.serve(simulator, url.host, url.port or 80, base_url, api_key, echo=typer.echo)
    except OSError as error:  # the port is taken, the address is not ours
        fail(f"无法监听 {url.host}:{url.port}：{error}", f"cannot listen: {error}", 1)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
