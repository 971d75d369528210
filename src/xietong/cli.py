"""The ``xietong`` command: thin wrappers that parse, call one service, and print.

Every failure prints a message (zh-CN, then English) on stderr and exits non-zero:
1 for a refused command or a failed check, 2 for bad usage or input.
"""

from __future__ import annotations

import getpass
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from xietong.config import Settings, get_settings
from xietong.kernel.access import Actor, operator_actor
from xietong.kernel.context import Context, open_context
from xietong.kernel.errors import XietongError
from xietong.plugins import plugin_manager

app = typer.Typer(
    help="协同 — 跨部门协同政务平台 / cross-department government collaboration",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="防篡改审计日志 / the tamper-evident audit log", no_args_is_help=True)
user_app = typer.Typer(help="用户 / users", no_args_is_help=True)
org_app = typer.Typer(help="组织机构 / organisation", no_args_is_help=True)
calendar_app = typer.Typer(help="工作日历 / working-day calendar", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(calendar_app, name="calendar")
process_app = typer.Typer(help="流程定义 / process definitions", no_args_is_help=True)
app.add_typer(process_app, name="process")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message_zh: str, message_en: str, code: int = 1) -> None:
    typer.echo(f"错误：{message_zh}\nerror: {message_en}", err=True)
    raise typer.Exit(code)


def handles_errors(func: F) -> F:
    """Domain errors become a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as error:
            fail(f"配置错误：{error}", f"invalid configuration: {error}", 2)
        except XietongError as error:
            details = f"\n{json.dumps(error.details, ensure_ascii=False)}" if error.details else ""
            code = 2 if 400 <= error.status < 500 and error.status not in (401, 403) else 1
            fail(error.message_zh, error.message_en + details, code)

    return wrapper  # type: ignore[return-value]


def cli_actor() -> Actor:
    """Whoever runs the CLI has the data dir and its keys: they act as administrator."""
    return operator_actor(f"cli@{getpass.getuser()}")


def initialise(settings: Settings) -> list[str]:
    from xietong.kernel.db import Database
    from xietong.kernel.keys import ensure_keys
    from xietong.migrate import current_revision, upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = ensure_keys(settings.keys_dir)
    db = Database(settings.sqlalchemy_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        before = current_revision(db.engine)
        upgrade(db.engine)
        after = current_revision(db.engine)
    finally:
        db.dispose()
    notes = [f"key created: {name}" for name in created]
    if before != after:
        notes.append(f"schema: {before or 'empty'} -> {after}")
    return notes


@contextmanager
def context() -> Iterator[Context]:
    ctx = open_context(get_settings(), hooks=plugin_manager().hook)
    try:
        yield ctx
    finally:
        ctx.close()


@app.command()
@handles_errors
def init() -> None:
    """创建数据目录、密钥并迁移数据库 / create the data dir and keys, migrate the database."""
    settings = get_settings()
    for note in initialise(settings):
        typer.echo(note)
    typer.echo(f"ready: {settings.data_dir}")


demo_app = typer.Typer(
    help="演示城市与演练 / the demo city and walkthroughs",
    invoke_without_command=True,
)
app.add_typer(demo_app, name="demo")


@demo_app.callback()
@handles_errors
def demo(typer_ctx: typer.Context) -> None:
    """加载演示城市（长沙市）/ load the demo city (idempotent).

    Without a sub-command it loads the demo; the sub-commands (``xietong demo
    walkthrough`` …) come from the apps (``demo_commands`` hook).
    """
    if typer_ctx.invoked_subcommand is not None:
        return
    from xietong.demo import load_demo

    initialise(get_settings())
    with context() as ctx:
        summary = load_demo(ctx)
    typer.echo(summary)


@app.command()
@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="load the demo city first")] = False,
    worker: Annotated[bool, typer.Option(help="run the embedded worker thread")] = True,
) -> None:
    """启动平台 / serve the platform (API, pages, embedded worker)."""
    import uvicorn

    from xietong.app import create_app

    settings = get_settings()
    initialise(settings)
    if demo:
        from xietong.demo import load_demo

        with context() as ctx:
            typer.echo(load_demo(ctx))
    ctx = open_context(settings, hooks=plugin_manager().hook)
    stop_worker: Callable[[], None] | None = None
    if worker:
        from xietong.kernel.bus import start_background_worker

        stop_worker = start_background_worker(ctx)
    typer.echo(f"xietong: http://{host}:{port}/  (data: {settings.data_dir})")
    try:
        uvicorn.run(create_app(ctx), host=host, port=port, log_level="info")
    finally:
        if stop_worker is not None:
            stop_worker()
        ctx.close()


@app.command("worker")
@handles_errors
def worker_command(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
    name: Annotated[str, typer.Option(help="worker name in leases")] = "",
) -> None:
    """运行后台任务：事件转发、定时器、Webhook 投递 / run relay, timers and deliveries."""
    from xietong.kernel.bus import Worker

    with context() as ctx:
        runner = Worker(ctx, name or f"worker-{getpass.getuser()}")
        if once:
            typer.echo(json.dumps(runner.run_once(), ensure_ascii=False))
            return
        stop = threading.Event()
        try:
            runner.run_forever(stop)
        except KeyboardInterrupt:
            stop.set()


@audit_app.command("verify")
@handles_errors
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """从存储的条目重算整棵树并核对每个签名树头 / recompute the tree, check every head."""
    from xietong.kernel import audit

    with context() as ctx, ctx.db.read() as session:
        report = audit.verify_log(session, ctx.keys.public_key_raw)
    result = {
        "ok": report.ok,
        "tree_size": report.tree_size,
        "heads_checked": report.heads_checked,
        "bad_index": report.bad_index,
        "problem": report.problem,
    }
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    if not report.ok:
        if not as_json:
            fail(
                f"审计日志校验失败：第 {report.bad_index} 条 — {report.problem}",
                f"audit log verification failed at index {report.bad_index}: {report.problem}",
            )
        raise typer.Exit(1)
    if not as_json:
        typer.echo(
            f"审计日志完整：{report.tree_size} 条，核对签名树头 {report.heads_checked} 个\n"
            f"audit log intact: {report.tree_size} entries, {report.heads_checked} signed heads"
        )


@user_app.command("add")
@handles_errors
def user_add(
    username: str,
    display_name: Annotated[str, typer.Option("--name", help="姓名")] = "",
    password: Annotated[str | None, typer.Option(help="default: prompt")] = None,
    department: Annotated[str | None, typer.Option(help="department code")] = None,
    role: Annotated[
        list[str] | None, typer.Option(help="role (code or 中文名), repeatable")
    ] = None,
) -> None:
    """新增用户 / add a user, optionally with memberships."""
    from xietong.kernel.org import service

    if password is None:
        password = typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    if role and department is None:
        fail("指定角色时需要 --department", "--role needs --department", 2)
    with context() as ctx:
        actor = cli_actor()
        department_id = None
        if department is not None:
            found = [d for d in service.list_departments(ctx, actor) if d.code == department]
            if not found:
                fail(f"部门不存在：{department}", f"no department with code {department}", 2)
            department_id = found[0].id
        user = service.add_user(ctx, actor, username, display_name or username, password)
        for role_name in role or []:
            assert department_id is not None
            service.grant_membership(ctx, actor, user.id, department_id, role_name)
    typer.echo(f"user added: {user.username}")


@org_app.command("import")
@handles_errors
def org_import(
    file: Annotated[Path, typer.Argument(help="xlsx with sheets 部门, 用户, 成员")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only")] = False,
) -> None:
    """从 Excel 导入部门、用户与成员 / import departments, users and memberships."""
    from xietong.kernel.org.importer import import_org_xlsx

    if not file.is_file():
        fail(f"文件不存在：{file}", f"file not found: {file}", 2)
    with context() as ctx:
        report = import_org_xlsx(ctx, cli_actor(), file, dry_run=dry_run)
    if report.errors:
        for error in report.errors:
            typer.echo(
                f"{error.sheet} 第 {error.row} 行 [{error.column}]：{error.message_zh} "
                f"/ {error.message_en}",
                err=True,
            )
        fail(
            f"导入失败：{len(report.errors)} 处错误，未写入任何数据",
            f"import failed: {len(report.errors)} errors, nothing written",
            2,
        )
    typer.echo(
        json.dumps(
            {"created": report.created, "updated": report.updated, "dry_run": dry_run},
            ensure_ascii=False,
        )
    )


@org_app.command("template")
@handles_errors
def org_template(file: Annotated[Path, typer.Argument(help="where to write the xlsx")]) -> None:
    """生成导入模板 / write an empty import workbook."""
    from xietong.kernel.org.importer import org_template_xlsx

    file.write_bytes(org_template_xlsx())
    typer.echo(f"written: {file}")


@calendar_app.command("load")
@handles_errors
def calendar_load(
    file: Annotated[Path, typer.Argument(help="JSON 放假安排, see docs/calendar.md")],
    region: Annotated[str | None, typer.Option(help="region code; default nationwide")] = None,
) -> None:
    """载入某年放假安排 / load a year's holidays and adjusted working days."""
    from xietong.kernel.calendar import load_schedule_file

    if not file.is_file():
        fail(f"文件不存在：{file}", f"file not found: {file}", 2)
    with context() as ctx:
        result = load_schedule_file(ctx, cli_actor(), file, region)
    typer.echo(
        f"loaded {', '.join(map(str, result.years))}: {result.holidays} holidays, "
        f"{result.workdays} adjusted working days (replaced {result.replaced})"
    )


@calendar_app.command("deadline")
@handles_errors
def calendar_deadline(
    start: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    days: Annotated[int, typer.Argument(help="working days")],
    region: Annotated[str | None, typer.Option(help="region code")] = None,
) -> None:
    """计算 N 个工作日后的日期 / the day N working days after START."""
    from datetime import date

    try:
        day = date.fromisoformat(start)
    except ValueError:
        fail(f"日期格式错误：{start}", f"not a date (YYYY-MM-DD): {start}", 2)
    if days < 0:
        fail("工作日数不能为负", "working days must not be negative", 2)
    with context() as ctx:
        assert ctx.calendar is not None
        result = ctx.calendar.add_working_days(day, days, region)
    flag = "（按周末推算，待当年放假安排公布后复核）" if result.estimated else ""
    typer.echo(f"{result.day.isoformat()}{flag}")


@process_app.command("check")
@handles_errors
def process_check(
    file: Annotated[Path, typer.Argument(help="BPMN 2.0 XML, or a YAML template (.yaml/.yml)")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 on unsupported elements or problems")
    ] = False,
) -> None:
    """检查流程定义文件 / report each process: nodes, flows, unsupported elements, problems."""
    from dataclasses import asdict

    from xietong.kernel.workflow.bpmn import ProcessReport, check_size, read_bpmn
    from xietong.kernel.workflow.template import read_template
    from xietong.kernel.workflow.validate import check

    if not file.is_file():
        fail(f"文件不存在：{file}", f"file not found: {file}", 2)
    check_size(file.stat().st_size)  # a 50 MB upload is refused before it is read
    if file.suffix.lower() in (".yaml", ".yml"):
        reports = [ProcessReport.from_graph(read_template(file.read_bytes()))]
    else:
        reports = read_bpmn(file.read_bytes())
    processes = []
    for report in reports:
        entry = report.to_dict()
        problems = check(report.graph) if report.graph is not None else None
        entry["problems"] = [asdict(p) for p in problems] if problems is not None else None
        processes.append(entry)
    if as_json:
        typer.echo(json.dumps({"processes": processes}, ensure_ascii=False))
    else:
        if not processes:
            typer.echo("文件中没有流程 / no process in the file")
        for entry in processes:
            flag = "可执行 executable" if entry["executable"] else "不可执行 not executable"
            typer.echo(
                f"流程 process {entry['id']} {entry['name']!r} ({flag}): "
                f"{len(entry['nodes'])} nodes, {len(entry['flows'])} flows"
            )
            for item in entry["unsupported"]:
                on = f" on {item['element']}" if item["element"] else ""
                typer.echo(f"  不支持 unsupported: {item['type']} {item['id']}{on}")
            for problem in entry["problems"] or []:
                typer.echo(
                    f"  问题 problem [{problem['code']}] {problem['node']}: "
                    f"{problem['message_zh']} / {problem['message_en']}"
                )
            if entry["problems"] == []:
                typer.echo("  可部署 ready to deploy")
    if strict and any(e["unsupported"] or e["problems"] for e in processes):
        raise typer.Exit(1)


@process_app.command("webhook-secret")
@handles_errors
def process_webhook_secret(
    url: Annotated[str, typer.Argument(help="the service task's webhook URL")],
) -> None:
    """服务任务回调签名密钥 / the secret service-task webhooks to URL are signed with."""
    from xietong.kernel.workflow.services import webhook_secret

    if not url.startswith(("http://", "https://")):
        fail(f"不是 HTTP(S) 地址：{url}", f"not an HTTP(S) URL: {url}", 2)
    with context() as ctx:
        typer.echo(webhook_secret(ctx, url))


def _add_app_commands() -> None:
    """Mount the command groups (``cli_apps``) and the ``xietong demo`` commands
    (``demo_commands``) that apps declare, once."""
    hooks = plugin_manager().hook
    mounted = {group.name for group in app.registered_groups}
    for groups in hooks.cli_apps():
        for name, group in groups:
            if name not in mounted:
                app.add_typer(group, name=name)
                mounted.add(name)
    taken = {command.name for command in demo_app.registered_commands}
    for commands in hooks.demo_commands():
        for name, function in commands:
            if name not in taken:
                demo_app.command(name)(function)
                taken.add(name)


_add_app_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
