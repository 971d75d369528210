"""The workflow engine's access-control actions.

Task operations are ``authenticated`` at the door: whether *this* user may work *this*
task (assignee, 代理 delegate, candidate by department and role) is decided by the
service from the task itself. Instance control is scoped to the owning department.
"""

from __future__ import annotations

from xietong.kernel.access import Role, register_action

OFFICE_ROLES = [
    Role.WINDOW_CLERK,
    Role.REVIEWER,
    Role.APPROVER,
    Role.HEAD,
    Role.SUPERVISOR,
    Role.DISPATCHER,
    Role.DATA_STEWARD,
]


def register() -> None:
    register_action(
        "workflow.definition.read",
        "authenticated",
        [],
        "查看流程定义",
        "Read process definitions",
        read_only=True,
    )
    register_action(
        "workflow.definition.deploy", "global", [Role.ADMIN], "部署流程定义", "Deploy processes"
    )
    register_action(
        "workflow.instance.start",
        "department",
        OFFICE_ROLES,
        "发起流程",
        "Start a process instance in a department",
    )
    register_action(
        "workflow.instance.read",
        "department",
        OFFICE_ROLES,
        "查看流程实例",
        "Read process instances of a department",
        read_only=True,
    )
    register_action(
        "workflow.instance.manage",
        "department",
        [Role.HEAD, Role.SUPERVISOR],
        "挂起、激活、终止流程实例",
        "Suspend, resume or terminate process instances",
    )
    register_action(
        "workflow.instance.jump",
        "global",
        [Role.ADMIN],
        "流程跳转与版本迁移",
        "Jump instances to a node and migrate them to a new version",
    )
    register_action(
        "workflow.message.correlate",
        "department",
        [*OFFICE_ROLES],
        "投递流程消息",
        "Deliver a message to a waiting process instance",
    )
    register_action(
        "workflow.task.work",
        "authenticated",
        [],
        "办理任务",
        "Work on tasks (claim, complete, send back, transfer, delegate, sign)",
    )
    register_action(
        "workflow.task.urge", "authenticated", [], "催办与抄送", "Urge task holders and send copies"
    )
    register_action(
        "workflow.task.read",
        "authenticated",
        [],
        "查看待办、已办与抄送",
        "Read one's own todo, done and cc lists",
        read_only=True,
    )
    register_action(
        "workflow.incident.manage",
        "global",
        [Role.ADMIN],
        "处理服务任务故障",
        "Retry failed service tasks",
    )
    register_action(
        "workflow.history.export",
        "global",
        [Role.ADMIN, Role.AUDITOR, Role.SUPERVISOR],
        "导出流程日志",
        "Export process history (XES)",
        read_only=True,
    )
